//! The service end to end: the real binary on loopback, real HTTP, a real data directory.

mod support;

#[path = "service/access.rs"]
mod access;
#[path = "service/browser.rs"]
mod browser;
#[path = "service/evidence.rs"]
mod evidence;

use reqwest::blocking::multipart::{Form, Part};
use serde_json::Value;
use support::{
    Server, fixture, generated_print, huaxing, image_part, register_a_b_and_distractors,
    register_original_and_held_copy, top_id,
};

#[test]
fn clerk_registers_and_anyone_finds_the_print() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    assert_eq!(server.get("/healthz").0, 200);

    let (status, a) = server.register(fixture("print_a.png"), "Peony toss");
    assert_eq!(status, 201, "{a}");
    let year = &a["registered_at"].as_str().unwrap()[..4];
    assert_eq!(a["registration_number"], format!("HX-{year}-000001"));
    assert_eq!(a["status"], "registered");
    assert_eq!(a["owner"], "Keqiao Prints");
    assert_eq!(
        (a["width"].as_u64(), a["height"].as_u64()),
        (Some(192), Some(144))
    );
    assert_eq!(a["duplicates"], Value::Array(vec![]));
    let a_id = a["id"].as_str().unwrap().to_string();

    let (status, b) = server.register(fixture("print_b.png"), "Night garden");
    assert_eq!(status, 201);
    assert_eq!(b["registration_number"], format!("HX-{year}-000002"));
    let b_id = b["id"].as_str().unwrap().to_string();

    // The same picture again, even re-encoded losslessly, is the same pattern.
    let (status, again) = server.register(fixture("print_a.png"), "again");
    assert_eq!((status, again["id"].as_str()), (200, Some(a_id.as_str())));
    for lossless in ["print_b.webp", "print_b.tiff", "print_b.bmp"] {
        let (status, same) = server.register(fixture(lossless), lossless);
        assert_eq!(
            (status, same["id"].as_str()),
            (200, Some(b_id.as_str())),
            "{lossless}"
        );
    }

    // A JPEG copy is a new upload, stored with the original flagged as its duplicate and
    // held for a clerk's review.
    let (status, copy) = server.register(fixture("print_a.jpg"), "Peony toss, JPEG");
    assert_eq!(status, 201);
    assert_eq!(copy["duplicates"][0]["id"], a_id.as_str());
    assert_eq!(copy["duplicates"][0]["copy"], true);
    assert_eq!(copy["status"], "pending_review");

    let (status, record) = server.get(&format!("/api/v1/patterns/{a_id}"));
    assert_eq!(
        (status, record["title"].as_str()),
        (200, Some("Peony toss"))
    );
    assert_eq!(record["sha256"].as_str().unwrap().len(), 64);
    let (status, image) = server.get_bytes(&format!("/api/v1/patterns/{a_id}/image"));
    assert_eq!((status, image), (200, fixture("print_a.png")));

    let (status, page) = server.get("/api/v1/patterns?offset=1&limit=1");
    assert_eq!(status, 200);
    assert_eq!(page["total"], 3);
    assert_eq!(page["patterns"].as_array().unwrap().len(), 1);
    assert_eq!(page["patterns"][0]["id"], b_id.as_str());

    // A turned copy is found first and judged a copy, with the turn explained.
    let found = server.search(fixture("print_a_rot90.png"));
    assert_eq!(top_id(&found), a_id);
    assert_eq!(found["matches"][0]["copy"], true);
    assert_eq!(
        found["matches"][0]["explanation"]["orientation"],
        "rotate270"
    );
    assert!(found["took_ms"].as_f64().is_some());
    let scores: Vec<f64> = found["matches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["score"].as_f64().unwrap())
        .collect();
    assert!(
        scores.windows(2).all(|w| w[0] >= w[1]) && scores.iter().all(|s| (0.0..=1.0).contains(s))
    );
    let (_, unrelated) = server.post(
        "/api/v1/search?k=1",
        Form::new().part("image", image_part(generated_print(5))),
    );
    assert_eq!(unrelated["matches"].as_array().unwrap().len(), 1);
    assert_eq!(unrelated["matches"][0]["copy"], false);
}

#[test]
fn batch_search_answers_in_order_and_compare_explains() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a_id = server.register_id(fixture("print_a.png"), "a");
    let b_id = server.register_id(fixture("print_b.png"), "b");

    let batch = Form::new()
        .part("image", image_part(fixture("print_b.gif")))
        .part("image", image_part(fixture("print_a_mirror.png")))
        .part("image", image_part(b"not an image".to_vec()))
        .part("image", image_part(fixture("print_a_cmyk.jpg")));
    let (status, answer) = server.post("/api/v1/search/batch?k=3", batch);
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(top_id(&results[0]), b_id);
    assert_eq!(top_id(&results[1]), a_id);
    assert_eq!(results[2]["error"]["code"], "unsupported_image");
    assert_eq!(top_id(&results[3]), a_id);

    let files = Form::new()
        .part(
            "a",
            Part::bytes(fixture("print_a_rot90.png")).file_name("a.png"),
        )
        .part("b", Part::bytes(fixture("print_a.png")).file_name("b.png"));
    let (status, same) = server.post("/api/v1/compare", files);
    assert_eq!(status, 200, "{same}");
    assert_eq!(same["copy"], true);
    assert!(
        same["explanation"]["summary"]
            .as_str()
            .unwrap()
            .contains("turned")
    );
    let signals = same["explanation"]["signals"].as_array().unwrap();
    assert!(
        signals
            .iter()
            .any(|s| s["name"] == "whole_print" && s["fired"] == true)
    );

    let ids = Form::new()
        .text("a_id", a_id.clone())
        .text("b_id", b_id.clone());
    let (status, different) = server.post("/api/v1/compare", ids);
    assert_eq!((status, different["copy"].as_bool()), (200, Some(false)));
    assert_eq!(different["b"]["id"], b_id.as_str());

    // A registered print compared as the query is read whole: its turn is still explained.
    let turned_id = server.register(fixture("print_a_rot90.png"), "a turned").1["id"]
        .as_str()
        .unwrap()
        .to_string();
    let ids = Form::new()
        .text("a_id", turned_id)
        .text("b_id", a_id.clone());
    let (status, registered) = server.post("/api/v1/compare", ids);
    assert_eq!(status, 200, "{registered}");
    assert_eq!(registered["copy"], true);
    assert_eq!(
        registered["explanation"]["orientation"],
        same["explanation"]["orientation"]
    );

    let mixed = Form::new()
        .part("a", Part::bytes(fixture("print_a.jpg")).file_name("a.jpg"))
        .text("b_id", a_id);
    assert_eq!(server.post("/api/v1/compare", mixed).1["copy"], true);
    let (status, half) = server.post("/api/v1/compare", Form::new().text("a_id", b_id));
    assert_eq!(
        (status, half["error"]["code"].as_str()),
        (400, Some("missing_field"))
    );
}

/// A crop and a rearrangement both match in several transform groups (the fixtures' flowers and
/// leaves match themselves mirrored and turned too); the summary tells them apart by whether
/// one placement lines up the whole design, in words and as the reading's kind.
#[test]
fn compare_tells_a_crop_from_motifs_placed_anew() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let summary_against_a = |copy: &str| {
        let files = Form::new()
            .part("a", Part::bytes(fixture(copy)).file_name(copy.to_string()))
            .part("b", Part::bytes(fixture("print_a.png")).file_name("a.png"));
        let (status, answer) = server.post("/api/v1/compare", files);
        assert_eq!(
            (status, &answer["copy"]),
            (200, &Value::Bool(true)),
            "{answer}"
        );
        let groups = answer["explanation"]["local"]["groups"].as_array().unwrap();
        assert!(groups.len() > 1, "{copy}: {groups:?}");
        let explanation = &answer["explanation"];
        (
            explanation["reading"]["kind"].as_str().unwrap().to_string(),
            explanation["summary"].as_str().unwrap().to_string(),
        )
    };
    let (kind, crop) = summary_against_a("print_a_recoloured_crop.png");
    assert_eq!(kind, "whole_design");
    assert!(crop.contains("carries the whole design"), "{crop}");
    let (kind, rearranged) = summary_against_a("print_a_rearranged.png");
    assert_eq!(kind, "placed_anew");
    assert!(rearranged.contains("placed anew"), "{rearranged}");
}

#[test]
fn rearranged_and_recoloured_cropped_copies_are_found_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a_id = register_a_b_and_distractors(&server);

    let rearranged = server.search(fixture("print_a_rearranged.png"));
    assert_eq!(top_id(&rearranged), a_id);
    let best = &rearranged["matches"][0];
    assert_eq!(best["copy"], true, "{best}");
    let groups = best["explanation"]["local"]["groups"].as_array().unwrap();
    assert!(groups.len() >= 2, "motifs moved independently: {groups:?}");
    assert!(
        best["explanation"]["summary"]
            .as_str()
            .unwrap()
            .contains("placed anew")
    );

    // Found first, well ahead of the rest; with only two kinds of motif in so small a crop the
    // weighed evidence stays under the copy threshold.
    let cropped = server.search(fixture("print_a_recoloured_crop.png"));
    assert_eq!(top_id(&cropped), a_id);
    let score = |i: usize| cropped["matches"][i]["score"].as_f64().unwrap();
    assert!(score(0) > score(1) + 0.1, "{cropped}");

    // Its palette mapping says which ink became which: the crop's red holds the original's
    // blue, its green the original's red, its blue the original's green.
    let pairs = cropped["matches"][0]["explanation"]["palette"]
        .as_array()
        .unwrap();
    assert_eq!(pairs.len(), 4, "the ground and three inks: {pairs:?}");
    let rgb = |hex: &Value| {
        let hex = hex.as_str().unwrap();
        let channel = |i: usize| i32::from_str_radix(&hex[1 + 2 * i..3 + 2 * i], 16).unwrap();
        [channel(0), channel(1), channel(2)]
    };
    for pair in pairs {
        let ([r, g, b], original) = (rgb(&pair["query"]), rgb(&pair["reference"]));
        let differences = [g, b, r]
            .into_iter()
            .zip(original)
            .map(|(c, o)| (c - o).abs());
        assert!(differences.max().unwrap() <= 16, "{pair}");
    }
}

/// A registration is checked for duplicates as it will be stored (its kept keypoints alone):
/// copies turned, mirrored or with their motifs placed anew are still held for review.
#[test]
fn a_registered_copy_turned_mirrored_or_rearranged_is_held_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a_id = register_a_b_and_distractors(&server);
    for copy in [
        "print_a_rot90.png",
        "print_a_mirror.png",
        "print_a_rearranged.png",
    ] {
        let (status, held) = server.register(fixture(copy), copy);
        assert_eq!(
            (status, held["status"].as_str()),
            (201, Some("pending_review")),
            "{copy}: {held}"
        );
        assert_eq!(held["duplicates"][0]["id"], a_id.as_str(), "{copy}");
    }
}

#[test]
fn every_supported_format_and_pixel_layout_is_searchable() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a_id = server.register_id(fixture("print_a.png"), "a");
    for name in [
        "print_b.gif",
        "print_b.webp",
        "print_b.tiff",
        "print_b.bmp",
        "print_a_cmyk.jpg",
        "grey16.png",
        "half_transparent.png",
    ] {
        assert!(server.search(fixture(name))["matches"].is_array(), "{name}");
    }
    // A strip far taller than wide (a border, a selvedge) registers like any print.
    let strip = image::RgbImage::from_fn(2, 20_000, |_, y| image::Rgb([(y % 251) as u8, 40, 90]));
    let mut png = std::io::Cursor::new(Vec::new());
    strip.write_to(&mut png, image::ImageFormat::Png).unwrap();
    assert_eq!(server.register(png.into_inner(), "strip").0, 201);
    // The EXIF orientation is applied: the turned camera image is found upright.
    let upright = server.search(fixture("print_a_exif_rotated.jpg"));
    assert_eq!(top_id(&upright), a_id);
    assert_eq!(
        upright["matches"][0]["explanation"]["orientation"],
        "identity"
    );
}

fn assert_error(answer: (u16, Value), status: u16, code: &str) {
    assert_eq!(answer.0, status, "{}", answer.1);
    assert_eq!(answer.1["error"]["code"], code, "{}", answer.1);
    assert!(!answer.1["error"]["message"].as_str().unwrap().is_empty());
}

#[test]
fn bad_input_gets_a_clear_json_error_and_the_service_carries_on() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let search = |bytes: Vec<u8>| {
        server.post(
            "/api/v1/search",
            Form::new().part("image", image_part(bytes)),
        )
    };
    let noise: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    assert_error(search(noise), 415, "unsupported_image");
    assert_error(search(fixture("truncated.png")), 400, "invalid_image");
    let jpeg = fixture("print_a.jpg");
    let half_jpeg = jpeg[..jpeg.len() / 2].to_vec();
    assert_error(search(half_jpeg.clone()), 400, "invalid_image");
    assert_error(
        server.register(half_jpeg, "half a print"),
        400,
        "invalid_image",
    );
    assert_error(search(fixture("zero_size.png")), 400, "invalid_image");
    assert_error(search(fixture("huge_header.png")), 413, "too_large");
    assert_error(search(Vec::new()), 400, "empty_upload");
    assert_error(
        server.post(
            "/api/v1/search",
            Form::new().part("file", image_part(fixture("print_a.png"))),
        ),
        400,
        "unknown_field",
    );
    assert_error(
        server.post("/api/v1/patterns", Form::new().text("title", "no image")),
        400,
        "missing_field",
    );
    let bad_status = Form::new()
        .part("image", image_part(fixture("print_a.png")))
        .text("status", "stolen");
    assert_error(
        server.post("/api/v1/patterns", bad_status),
        400,
        "invalid_status",
    );
    assert_oversized_upload_refused_before_it_is_sent(&server.url);
    assert_error(
        server.post(
            "/api/v1/search?k=0",
            Form::new().part("image", image_part(fixture("print_a.png"))),
        ),
        400,
        "invalid_k",
    );
    let mut too_many = Form::new();
    for _ in 0..65 {
        too_many = too_many.part("image", image_part(fixture("print_b.gif")));
    }
    assert_error(
        server.post("/api/v1/search/batch", too_many),
        400,
        "too_many_files",
    );
    assert_error(
        server.get("/api/v1/patterns/0123456789abcdef"),
        404,
        "not_found",
    );
    assert_error(server.get("/api/v1/nowhere"), 404, "not_found");
    assert_error(
        server.get("/api/v1/patterns?limit=5000"),
        400,
        "invalid_limit",
    );
    let response = reqwest::blocking::Client::new()
        .post(format!("{}/api/v1/search", server.url))
        .bearer_auth(support::ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    assert!(response.json::<Value>().unwrap()["error"]["message"].is_string());

    // None of that hurt the service or the registry.
    assert_eq!(server.get("/healthz").1["patterns"], 0);
    assert_eq!(server.register(fixture("print_a.png"), "a").0, 201);
}

/// A body announced larger than any endpoint accepts is refused from its headers alone.
fn assert_oversized_upload_refused_before_it_is_sent(url: &str) {
    use std::io::{Read, Write};
    let address = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    let head = format!(
        "POST /api/v1/search HTTP/1.1\r\nHost: {address}\r\nContent-Type: multipart/form-data; boundary=x\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        1u64 << 30
    );
    stream.write_all(head.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""code":"too_large""#), "{answer}");
}

#[test]
fn acknowledged_registrations_survive_kill_9_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let mut ids = Vec::new();
    for seed in 0..12 {
        let (status, record) = server.register(generated_print(seed), &format!("print {seed}"));
        assert_eq!(status, 201);
        ids.push(record["id"].as_str().unwrap().to_string());
    }
    server.kill();

    let server = Server::start(dir.path());
    assert_eq!(server.get("/healthz").1["patterns"], 12);
    for (seed, id) in ids.iter().enumerate() {
        assert_eq!(server.get(&format!("/api/v1/patterns/{id}")).0, 200);
        assert_eq!(top_id(&server.search(generated_print(seed as u64))), id);
    }
    let (status, later) = server.register(generated_print(100), "after the crash");
    assert_eq!(status, 201);
    assert!(
        later["registration_number"]
            .as_str()
            .unwrap()
            .ends_with("-000013")
    );
    server.stop();
    let dump = dir.path().join("index/keypoints.bin");
    assert!(dump.exists(), "a graceful stop saves the index");
    let saved_at = || std::fs::metadata(&dump).unwrap().modified().unwrap();
    let first_save = saved_at();

    let server = Server::start(dir.path());
    assert_eq!(server.get("/healthz").1["patterns"], 13);
    assert_eq!(
        top_id(&server.search(generated_print(100))),
        later["id"].as_str().unwrap()
    );
    assert_eq!(top_id(&server.search(generated_print(3))), ids[3]);
    server.stop();
    assert_eq!(
        saved_at(),
        first_save,
        "a stop with nothing registered since the start leaves the saved index as it was"
    );

    let server = Server::start(dir.path());
    let last = server.register_id(generated_print(101), "after a restart");
    server.stop();
    assert_ne!(
        saved_at(),
        first_save,
        "a stop saves a registration's index"
    );
    let server = Server::start(dir.path());
    assert_eq!(top_id(&server.search(generated_print(101))), last);
}

#[test]
fn a_pattern_held_for_review_stays_out_of_searches_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let (original, held) = register_original_and_held_copy(&server);
    server.kill();

    let server = Server::start(dir.path());
    let found = server.search(fixture("print_a.jpg"));
    assert_eq!(top_id(&found), original);
    let matches = found["matches"].as_array().unwrap();
    assert!(matches.iter().all(|m| m["id"] != held["id"]), "{found}");
}

#[test]
fn features_of_an_older_version_or_unreadable_are_re_extracted_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let a_id = server.register_id(fixture("print_a.png"), "a");
    let b_id = server.register_id(fixture("print_b.png"), "b");
    server.stop();
    let db = rusqlite::Connection::open(dir.path().join("registry.sqlite")).unwrap();
    db.execute(
        "UPDATE patterns SET feature_version = 1 WHERE id = ?1",
        [&a_id],
    )
    .unwrap();
    db.execute(
        "UPDATE patterns SET features = x'00' WHERE id = ?1",
        [&b_id],
    )
    .unwrap();
    drop(db);

    let server = Server::start(dir.path());
    assert_eq!(top_id(&server.search(fixture("print_a_rot90.png"))), a_id);
    assert_eq!(top_id(&server.search(fixture("print_b.gif"))), b_id);
}

#[test]
fn a_second_process_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _server = Server::start(dir.path());
    let output = huaxing()
        .args(["search", "--data"])
        .arg(dir.path())
        .arg("fixtures/print_a.png")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("in use by another huaxing process"));
}

#[test]
fn bulk_import_is_resumable_and_survives_kill_9() {
    let prints = tempfile::tempdir().unwrap();
    for seed in 0..300 {
        std::fs::write(
            prints.path().join(format!("p{seed:03}.png")),
            generated_print(seed),
        )
        .unwrap();
    }
    std::fs::write(prints.path().join("broken.png"), b"\x89PNG broken").unwrap();
    let data = tempfile::tempdir().unwrap();

    // Kill an import part-way (once the registry holds some prints), then finish it.
    let mut first = huaxing()
        .arg("import")
        .arg(prints.path())
        .arg("--data")
        .arg(data.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let registered_so_far = || {
        let path = data.path().join("registry.sqlite");
        let db = rusqlite::Connection::open_with_flags(
            &path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .ok()?;
        db.query_row("SELECT COUNT(*) FROM patterns", [], |r| r.get::<_, u64>(0))
            .ok()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while registered_so_far().unwrap_or(0) < 20 {
        assert!(
            std::time::Instant::now() < deadline,
            "the import registered nothing in 120 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let second = huaxing()
        .arg("import")
        .arg(prints.path())
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let summary = String::from_utf8_lossy(&second.stdout);
    assert!(summary.contains("1 failed"), "{summary}");
    let already: u64 = summary
        .split(" new prints, ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        already >= 20,
        "the second run skips what the first registered: {summary}"
    );
    assert!(String::from_utf8_lossy(&second.stderr).contains("broken.png"));

    // Every print is registered once and the index agrees with the registry.
    let server = Server::start(data.path());
    let (_, page) = server.get("/api/v1/patterns?limit=1000");
    assert_eq!(page["total"], 300);
    for seed in (0..300).step_by(23) {
        let found = server.search(generated_print(seed));
        assert_eq!(found["matches"][0]["title"], format!("p{seed:03}"));
        assert_eq!(found["matches"][0]["score"], 1.0);
    }
    server.stop();
    let third = huaxing()
        .arg("import")
        .arg(prints.path())
        .arg("--data")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&third.stdout)
            .contains("imported 0 new prints, 300 already registered")
    );
}

#[test]
fn cli_compare_explains_in_json() {
    let output = huaxing()
        .args([
            "compare",
            "fixtures/print_a_mirror.png",
            "fixtures/print_a.png",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        (
            answer["copy"].as_bool(),
            answer["explanation"]["orientation"].as_str()
        ),
        (Some(true), Some("mirror"))
    );
}
