//! Bytes to pixels, under limits. Uploads are untrusted: the size of the upload and the size the
//! header claims are both checked before any pixel buffer is allocated, and every failure is a
//! clear [`Error`] for the caller, never a panic.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, RgbImage};

use crate::error::{Error, Result};

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Largest decoded image accepted, in pixels (64 megapixels).
pub const MAX_PIXELS: u64 = 64_000_000;
/// Largest allocation a decoder may make; 64 MP of 16-bit RGBA fits.
const MAX_DECODER_ALLOC: u64 = 600 * 1024 * 1024;

/// A decoded upload: 8-bit RGB with EXIF orientation applied and alpha composited on white.
pub struct DecodedImage {
    pub pixels: RgbImage,
    pub format: ImageFormat,
}

impl DecodedImage {
    /// The MIME type of the format the upload was in.
    pub fn media_type(&self) -> &'static str {
        self.format.to_mime_type()
    }
}

/// Decodes PNG, JPEG, WebP, TIFF, BMP or GIF (first frame).
pub fn decode(bytes: &[u8]) -> Result<DecodedImage> {
    if bytes.is_empty() {
        return Err(Error::bad_input(
            "empty_upload",
            "the uploaded file is empty",
        ));
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(Error::TooLarge {
            message: format!(
                "the upload is {} bytes; the limit is {MAX_UPLOAD_BYTES} bytes (32 MiB)",
                bytes.len()
            ),
        });
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::bad_input("invalid_image", format!("cannot read the upload: {e}")))?;
    let format = reader.format().ok_or_else(|| Error::Unsupported {
        message: "not a recognised image format; send PNG, JPEG, WebP, TIFF, BMP or GIF".into(),
    })?;
    let mut reader = reader;
    reader.limits(decoder_limits());
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::bad_input(
            "empty_image",
            format!("the image is {width}×{height} pixels: it has no pixels"),
        ));
    }
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::TooLarge {
            message: format!(
                "the image claims {width}×{height} pixels; the limit is 64 megapixels"
            ),
        });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // Before decoding: a cut file is refused without allocating and filling its pixels.
    if format == ImageFormat::Jpeg && jpeg_truncated(bytes) {
        return Err(Error::bad_input(
            "invalid_image",
            "the image is truncated: the JPEG stops before its end marker",
        ));
    }
    let mut image = DynamicImage::from_decoder(decoder).map_err(image_error)?;
    image.apply_orientation(orientation);
    Ok(DecodedImage {
        pixels: composite_on_white(&image),
        format,
    })
}

/// Whether a JPEG stops short: no end-of-image marker (FF D9) follows its last start-of-scan
/// marker (FF DA). The JPEG decoder fills what a cut file lacks with grey and says nothing, and
/// a registration of part of a print would record the wrong picture. Neither marker can occur
/// inside a scan's data, where every FF byte is followed by 00 or a restart marker.
fn jpeg_truncated(bytes: &[u8]) -> bool {
    let Some(last_scan) = bytes.windows(2).rposition(|pair| pair == [0xFF, 0xDA]) else {
        return true;
    };
    !bytes[last_scan..]
        .windows(2)
        .any(|pair| pair == [0xFF, 0xD9])
}

fn decoder_limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODER_ALLOC);
    limits
}

/// Flattens any pixel layout (grey, 16-bit, float, with or without alpha) to 8-bit RGB on white,
/// the way a print with transparent ground would look on white fabric.
fn composite_on_white(image: &DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let over_white =
            |c: u8| ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8;
        image::Rgb([over_white(r), over_white(g), over_white(b)])
    })
}

fn image_error(error: ImageError) -> Error {
    match error {
        ImageError::Limits(e) => Error::TooLarge {
            message: format!("the image is too large to decode: {e}"),
        },
        ImageError::Unsupported(e) => Error::Unsupported {
            message: format!("unsupported image: {e}"),
        },
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::bad_input("invalid_image", "the image is truncated")
        }
        other => Error::bad_input("invalid_image", format!("cannot decode the image: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png_bytes(image: &DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn transparent_pixels_become_white() {
        let rgba = image::RgbaImage::from_fn(4, 4, |x, _| {
            if x < 2 {
                image::Rgba([255, 0, 0, 0])
            } else {
                image::Rgba([0, 0, 255, 255])
            }
        });
        let decoded = decode(&png_bytes(&DynamicImage::ImageRgba8(rgba))).unwrap();
        assert_eq!(decoded.pixels.get_pixel(0, 0).0, [255, 255, 255]);
        assert_eq!(decoded.pixels.get_pixel(3, 0).0, [0, 0, 255]);
        assert_eq!(decoded.media_type(), "image/png");
    }

    #[test]
    fn sixteen_bit_images_are_read() {
        let deep = image::ImageBuffer::<image::Rgb<u16>, _>::from_pixel(
            3,
            2,
            image::Rgb([65535, 0, 32768]),
        );
        let decoded = decode(&png_bytes(&DynamicImage::ImageRgb16(deep))).unwrap();
        assert_eq!(decoded.pixels.dimensions(), (3, 2));
        assert_eq!(decoded.pixels.get_pixel(0, 0).0, [255, 0, 128]);
    }

    #[test]
    fn no_prefix_of_a_png_panics_or_decodes_wrong() {
        let bytes = png_bytes(&DynamicImage::ImageRgb8(RgbImage::from_fn(
            16,
            16,
            |x, y| image::Rgb([(x * 16) as u8, (y * 16) as u8, 7]),
        )));
        // A prefix may lack only the end marker and still decode whole; none may panic.
        for len in 0..bytes.len() {
            if let Ok(decoded) = decode(&bytes[..len]) {
                assert_eq!(
                    decoded.pixels.dimensions(),
                    (16, 16),
                    "prefix of {len} bytes"
                );
            }
        }
        assert!(decode(&bytes[..bytes.len() / 2]).is_err());
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn every_cut_jpeg_is_refused_as_truncated() {
        let image = DynamicImage::ImageRgb8(RgbImage::from_fn(48, 48, |x, y| {
            image::Rgb([(x * 5) as u8, (y * 5) as u8, ((x * y) % 256) as u8])
        }));
        let mut bytes = Cursor::new(Vec::new());
        image.write_to(&mut bytes, ImageFormat::Jpeg).unwrap();
        let bytes = bytes.into_inner();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "prefix of {len} bytes");
        }
        let half = decode(&bytes[..bytes.len() / 2]).err().unwrap();
        assert!(half.to_string().contains("truncated"), "{half}");
        assert!(decode(&bytes).is_ok());
        // Bytes after the end marker (some cameras append data) leave the picture whole.
        let padded = [bytes.as_slice(), &[0u8; 100]].concat();
        assert!(decode(&padded).is_ok());
    }

    #[test]
    fn random_bytes_are_refused_as_unsupported() {
        let noise: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(matches!(decode(&noise), Err(Error::Unsupported { .. })));
    }
}
