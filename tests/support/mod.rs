//! Test helpers: the real `huaxing` binary serving on a random loopback port over a temporary
//! data directory, a blocking HTTP client, and generated prints.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use reqwest::blocking::{Client, multipart};
use serde_json::Value;

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name),
    )
    .expect("fixture")
}

pub fn huaxing() -> Command {
    Command::new(env!("CARGO_BIN_EXE_huaxing"))
}

/// The admin token every test server starts with (`HUAXING_ADMIN_TOKEN`).
pub const ADMIN_TOKEN: &str = "hx_test_admin_0123456789abcdef";

/// A running `huaxing serve`. Its helpers send the admin token unless told otherwise.
pub struct Server {
    child: Child,
    pub url: String,
    pub banner: Vec<String>,
    client: Client,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        Server::start_with(data, &[], Some(ADMIN_TOKEN))
    }

    /// Starts with extra `serve` flags, and `HUAXING_ADMIN_TOKEN` set to `admin_token` (or
    /// unset). What it printed before listening is kept in `banner`.
    pub fn start_with(data: &Path, flags: &[&str], admin_token: Option<&str>) -> Server {
        let mut command = huaxing();
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(flags)
            .env_remove("HUAXING_ADMIN_TOKEN");
        if let Some(token) = admin_token {
            command.env("HUAXING_ADMIN_TOKEN", token);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start huaxing serve");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut banner = Vec::new();
        let url = loop {
            let line = receiver
                .recv_timeout(Duration::from_secs(120))
                .expect("server announces its address");
            if let Some(url) = line.strip_prefix("huaxing listening on ") {
                break url.to_string();
            }
            banner.push(line);
        };
        Server {
            child,
            url,
            banner,
            client: Client::builder()
                .timeout(Duration::from_secs(120))
                .default_headers(
                    [(
                        reqwest::header::AUTHORIZATION,
                        format!("Bearer {ADMIN_TOKEN}").parse().expect("header"),
                    )]
                    .into_iter()
                    .collect(),
                )
                .build()
                .expect("client"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no shutdown work at all, as in a crash or power cut.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
    }

    /// SIGTERM, then wait for the graceful shutdown to finish.
    pub fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("send SIGTERM");
        assert!(status.success());
        assert!(
            self.child.wait().expect("wait").success(),
            "graceful shutdown exits 0"
        );
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .expect("GET");
        let status = response.status().as_u16();
        (status, response.json().unwrap_or(Value::Null))
    }

    pub fn get_bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .expect("GET");
        (
            response.status().as_u16(),
            response.bytes().expect("body").to_vec(),
        )
    }

    pub fn post(&self, path: &str, form: multipart::Form) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .multipart(form)
            .send()
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().expect("every answer is JSON"))
    }

    /// A request as the holder of `token` (none: no Authorization header at all).
    pub fn send_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Body>,
    ) -> (u16, Vec<u8>) {
        let client = Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client");
        let mut request = client.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request = match body {
            Some(Body::Form(form)) => request.multipart(form),
            Some(Body::Json(json)) => request.json(&json),
            None => request,
        };
        let response = request.send().expect("request");
        (
            response.status().as_u16(),
            response.bytes().expect("body").to_vec(),
        )
    }

    /// Creates a token with this role and returns its secret.
    pub fn token(&self, role: &str, name: &str) -> String {
        let (status, body) = self.post_json(
            "/api/v1/tokens",
            serde_json::json!({"role": role, "name": name}),
        );
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().expect("token").to_string()
    }

    pub fn post_json(&self, path: &str, json: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .json(&json)
            .send()
            .expect("POST");
        let status = response.status().as_u16();
        (status, response.json().expect("every answer is JSON"))
    }

    pub fn register(&self, image: Vec<u8>, title: &str) -> (u16, Value) {
        let form = multipart::Form::new()
            .part("image", image_part(image))
            .text("title", title.to_string())
            .text("owner", "Keqiao Prints")
            .text("reference", format!("{title}.png"));
        self.post("/api/v1/patterns", form)
    }

    /// Registers and returns the pattern's id.
    pub fn register_id(&self, image: Vec<u8>, title: &str) -> String {
        let (status, record) = self.register(image, title);
        assert!(status == 200 || status == 201, "{record}");
        record["id"].as_str().expect("id").to_string()
    }

    pub fn search(&self, image: Vec<u8>) -> Value {
        let (status, body) = self.post(
            "/api/v1/search?k=5",
            multipart::Form::new().part("image", image_part(image)),
        );
        assert_eq!(status, 200, "{body}");
        body
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A request body.
pub enum Body {
    Form(multipart::Form),
    Json(Value),
}

pub fn image_part(bytes: Vec<u8>) -> multipart::Part {
    multipart::Part::bytes(bytes).file_name("upload.png")
}

/// Registers `print_a.png`, then its JPEG copy, which is held for review as a duplicate of it:
/// the original's id and the held copy's record.
pub fn register_original_and_held_copy(server: &Server) -> (String, Value) {
    let original = server.register_id(fixture("print_a.png"), "Peony toss");
    let (status, held) = server.register(fixture("print_a.jpg"), "Peony toss, again");
    assert_eq!(
        (status, held["status"].as_str()),
        (201, Some("pending_review"))
    );
    assert_eq!(held["duplicates"][0]["id"], original.as_str());
    (original, held)
}

/// Registers `print_a.png`, `print_b.png` and twenty generated distractors, a registry in which
/// copies of print a must be told from the rest: print a's id.
pub fn register_a_b_and_distractors(server: &Server) -> String {
    let a_id = server.register_id(fixture("print_a.png"), "a");
    server.register(fixture("print_b.png"), "b");
    for seed in 0..20 {
        server.register(generated_print(seed), &format!("distractor {seed}"));
    }
    a_id
}

/// A distinct generated print for each seed, as PNG bytes.
pub fn generated_print(seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let ground = [
        (next() % 256) as u8,
        (next() % 256) as u8,
        (next() % 256) as u8,
    ];
    let mut image = image::RgbImage::from_pixel(128, 96, image::Rgb(ground));
    for _ in 0..6 {
        let ink = image::Rgb([
            (next() % 256) as u8,
            (next() % 256) as u8,
            (next() % 256) as u8,
        ]);
        let (cx, cy, r) = (
            (next() % 128) as i64,
            (next() % 96) as i64,
            (6 + next() % 20) as i64,
        );
        for (x, y, pixel) in image.enumerate_pixels_mut() {
            if (x as i64 - cx).pow(2) + (y as i64 - cy).pow(2) < r * r {
                *pixel = ink;
            }
        }
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .expect("encode PNG");
    bytes.into_inner()
}

/// The id of the best match of a search answer.
pub fn top_id(answer: &Value) -> &str {
    answer["matches"][0]["id"].as_str().unwrap_or("<no match>")
}
