//! The court's side-by-side comparison: both prints at one height, each matched region
//! outlined in the same colour on both sides and joined by a line, the transform of each
//! region, which ink became which (the explanation's palette mapping), and the verdict in
//! words. Rendered as a self-contained HTML page (images inlined) and as a PNG composite.

use image::{Rgb, RgbImage, imageops};
use serde::Serialize;

use crate::features::inks::hex;
use crate::search::Comparison;
use crate::search::local::Region;

/// Each print is shown as large as fits this box: the same height for ordinary prints, and no
/// huge canvas for a long thin one.
pub const SHOWN_HEIGHT: u32 = 360;
pub const SHOWN_WIDTH: u32 = 720;
/// Space between the two prints in the composite.
pub const GAP: u32 = 24;
/// Region colours, told apart easily and by most colour-blind readers (Okabe–Ito).
pub const REGION_COLOURS: [[u8; 3]; 8] = [
    [230, 159, 0],
    [86, 180, 233],
    [0, 158, 115],
    [240, 228, 66],
    [0, 114, 178],
    [213, 94, 0],
    [204, 121, 167],
    [0, 0, 0],
];
/// Most regions drawn: beyond that the picture stops explaining anything.
const MAX_REGIONS: usize = 8;

/// One matched region as drawn: where on each side (in composite pixels) and how it moved.
#[derive(Clone, Debug, Serialize)]
pub struct DrawnRegion {
    pub colour: String,
    pub a: PixelBox,
    pub b: PixelBox,
    pub rotation_degrees: f32,
    pub scale: f32,
    pub mirrored: bool,
    pub matches: usize,
    /// The whole print matched as one (hash signals, no local groups), in the explanation's
    /// orientation.
    pub whole_print: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct PixelBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl PixelBox {
    fn centre(&self) -> (i64, i64) {
        (
            (self.x + self.width / 2) as i64,
            (self.y + self.height / 2) as i64,
        )
    }
}

/// Both prints scaled to fit the shown box, and where the regions fall on them.
pub struct Layout {
    pub a: RgbImage,
    pub b: RgbImage,
    /// Left edge of the second print in the composite.
    pub b_left: u32,
    pub width: u32,
    pub height: u32,
    pub regions: Vec<DrawnRegion>,
}

pub fn layout(a: &RgbImage, b: &RgbImage, comparison: &Comparison) -> Layout {
    let shown = |image: &RgbImage| {
        let (w, h) = image.dimensions();
        let (w, h) = (w.max(1) as f32, h.max(1) as f32);
        let factor = (SHOWN_HEIGHT as f32 / h).min(SHOWN_WIDTH as f32 / w);
        let size = |side: f32| ((side * factor).round() as u32).max(1);
        imageops::resize(image, size(w), size(h), imageops::FilterType::Triangle)
    };
    let (a, b) = (shown(a), shown(b));
    let b_left = a.width() + GAP;
    let place = |region: &Region, image: &RgbImage, left: u32| PixelBox {
        x: left + (region.x * image.width() as f32) as u32,
        y: (region.y * image.height() as f32) as u32,
        width: ((region.width * image.width() as f32) as u32).max(2),
        height: ((region.height * image.height() as f32) as u32).max(2),
    };
    let groups = &comparison.explanation.local.groups;
    let mut regions: Vec<DrawnRegion> = groups
        .iter()
        .take(MAX_REGIONS)
        .enumerate()
        .map(|(i, group)| DrawnRegion {
            colour: hex(REGION_COLOURS[i % REGION_COLOURS.len()]),
            a: place(&group.query_region, &a, 0),
            b: place(&group.reference_region, &b, b_left),
            rotation_degrees: group.rotation_degrees,
            scale: group.scale,
            mirrored: group.mirrored,
            matches: group.matches,
            whole_print: false,
        })
        .collect();
    let whole_print_fired = comparison
        .explanation
        .signals
        .iter()
        .any(|s| s.fired && s.name == "whole_print");
    if regions.is_empty() && whole_print_fired {
        let whole = Region {
            x: 0.0,
            y: 0.0,
            width: 1.0,
            height: 1.0,
        };
        regions.push(DrawnRegion {
            colour: hex(REGION_COLOURS[0]),
            a: place(&whole, &a, 0),
            b: place(&whole, &b, b_left),
            rotation_degrees: 0.0,
            scale: 1.0,
            mirrored: false,
            matches: 0,
            whole_print: true,
        });
    }
    Layout {
        width: b_left + b.width(),
        height: a.height().max(b.height()),
        a,
        b,
        b_left,
        regions,
    }
}

/// The composite as PNG: both prints, the regions outlined, centres joined.
pub fn composite_png(layout: &Layout) -> Vec<u8> {
    let mut canvas = RgbImage::from_pixel(layout.width, layout.height, Rgb([255, 255, 255]));
    imageops::replace(&mut canvas, &layout.a, 0, 0);
    imageops::replace(&mut canvas, &layout.b, layout.b_left as i64, 0);
    for region in &layout.regions {
        let colour = Rgb(parse_hex(&region.colour));
        for side in [region.a, region.b] {
            outline(&mut canvas, side, colour);
        }
        let (from, to) = (region.a.centre(), region.b.centre());
        for offset in -1..=1 {
            line(
                &mut canvas,
                (from.0, from.1 + offset),
                (to.0, to.1 + offset),
                colour,
            );
        }
    }
    let mut png = std::io::Cursor::new(Vec::new());
    canvas
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    png.into_inner()
}

pub fn png_of(image: &RgbImage) -> Vec<u8> {
    let mut png = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut png, image::ImageFormat::Png)
        .expect("encoding a PNG in memory cannot fail");
    png.into_inner()
}

/// A rectangle three pixels thick.
fn outline(canvas: &mut RgbImage, area: PixelBox, colour: Rgb<u8>) {
    let (w, h) = canvas.dimensions();
    let (x0, y0) = (area.x.min(w - 1), area.y.min(h - 1));
    let (x1, y1) = (
        (area.x + area.width).min(w - 1),
        (area.y + area.height).min(h - 1),
    );
    for t in 0..3 {
        for x in x0..=x1 {
            canvas.put_pixel(x, (y0 + t).min(h - 1), colour);
            canvas.put_pixel(x, y1.saturating_sub(t), colour);
        }
        for y in y0..=y1 {
            canvas.put_pixel((x0 + t).min(w - 1), y, colour);
            canvas.put_pixel(x1.saturating_sub(t), y, colour);
        }
    }
}

/// Bresenham's line, clipped to the canvas.
fn line(canvas: &mut RgbImage, from: (i64, i64), to: (i64, i64), colour: Rgb<u8>) {
    let (w, h) = (canvas.width() as i64, canvas.height() as i64);
    let (mut x, mut y) = from;
    let (dx, dy) = ((to.0 - x).abs(), -(to.1 - y).abs());
    let (sx, sy) = (if x < to.0 { 1 } else { -1 }, if y < to.1 { 1 } else { -1 });
    let mut error = dx + dy;
    loop {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            canvas.put_pixel(x as u32, y as u32, colour);
        }
        if (x, y) == to {
            break;
        }
        let doubled = 2 * error;
        if doubled >= dy {
            error += dy;
            x += sx;
        }
        if doubled <= dx {
            error += dx;
            y += sy;
        }
    }
}

fn parse_hex(text: &str) -> [u8; 3] {
    let channel = |i: usize| u8::from_str_radix(&text[1 + 2 * i..3 + 2 * i], 16).unwrap_or(0);
    [channel(0), channel(1), channel(2)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_thin_print_is_shown_small_not_huge() {
        let thin = RgbImage::from_pixel(20_000, 2, Rgb([10, 20, 30]));
        let square = RgbImage::from_pixel(300, 300, Rgb([200, 20, 30]));
        let comparison = crate::search::compare(
            &crate::search::Query::alone(&crate::features::FeatureSet::default()),
            &crate::features::FeatureSet::default(),
            None,
            0.45,
        );
        let layout = layout(&thin, &square, &comparison);
        assert!(layout.a.width() <= SHOWN_WIDTH && layout.a.height() >= 1);
        assert!(layout.width <= 2 * SHOWN_WIDTH + GAP && layout.height <= SHOWN_HEIGHT);
        assert!(!composite_png(&layout).is_empty());
    }
}
