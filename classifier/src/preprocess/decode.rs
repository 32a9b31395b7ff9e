//! Bytes -> 8-bit RGB, with the size limit checked on the header before anything is decoded.

use std::io::Cursor;

use image::{DynamicImage, ImageFormat, ImageReader, Limits, RgbImage};

use super::PreprocessError;

/// Refuses photos before decoding them, so one hostile file cannot take the memory of a
/// worker (a 20000 x 20000 PNG is 1.2 GB of RGB once decoded, from a header of a few bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest `width * height` accepted.
    pub max_pixels: u64,
    /// Largest file accepted, in bytes (checked by the fetch, before reading).
    pub max_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self { max_pixels: 40_000_000, max_bytes: 50 * 1024 * 1024 }
    }
}

/// The formats the pipeline accepts, from the bytes' magic numbers (not the file name).
pub fn sniff_format(bytes: &[u8]) -> Result<ImageFormat, PreprocessError> {
    if bytes.is_empty() {
        return Err(PreprocessError::NotAnImage { detail: "the file is empty".into() });
    }
    match image::guess_format(bytes) {
        Ok(format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP)) => Ok(format),
        Ok(other) => Err(PreprocessError::NotAnImage {
            detail: format!("{other:?} is not a supported format (jpeg, png, webp)"),
        }),
        Err(_) => Err(PreprocessError::NotAnImage { detail: "the bytes are not a jpeg, png or webp image".into() }),
    }
}

/// A JPEG of the accepted `width` x `height` through libjpeg-turbo, as the training code's
/// Pillow decodes it (the accurate integer IDCT, fancy upsampling, grey replicated to RGB):
/// the same pixels. `None` for what it will not turn into RGB (CMYK, YCCK), reports as
/// damaged (even only with a warning: Pillow decodes those), or sees at another size than the
/// header check did: the `image` crate, as lenient and under its allocation limits, decodes
/// them or says why not.
fn decode_jpeg(bytes: &[u8], width: u32, height: u32) -> Option<RgbImage> {
    let decoded = (|| {
        let mut decompressor = turbojpeg::Decompressor::new()?;
        let header = decompressor.read_header(bytes)?;
        if matches!(header.colorspace, turbojpeg::Colorspace::CMYK | turbojpeg::Colorspace::YCCK)
            || (header.width, header.height) != (width as usize, height as usize)
        {
            return Err(turbojpeg::Error::TurboJpegError(format!(
                "{:?} {}x{}: left to the image crate",
                header.colorspace, header.width, header.height
            )));
        }
        let pitch = header.width * 3;
        let mut image = turbojpeg::Image {
            pixels: vec![0; pitch * header.height],
            width: header.width,
            pitch,
            height: header.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        decompressor.decompress(bytes, image.as_deref_mut())?;
        Ok(image.pixels)
    })();
    match decoded {
        Ok(pixels) => RgbImage::from_raw(width, height, pixels),
        Err(e) => {
            tracing::debug!(error = %e, "libjpeg-turbo did not decode the photo; the image crate tries");
            None
        }
    }
}

/// Decodes to 8-bit RGB: alpha is composited onto `background`, grey is expanded.
pub fn decode_rgb(bytes: &[u8], limits: &DecodeLimits, background: [u8; 3]) -> Result<RgbImage, PreprocessError> {
    let format = sniff_format(bytes)?;
    let decode_err = |e: image::ImageError| PreprocessError::Decode { detail: e.to_string() };

    // Header only: dimensions without decoding a pixel.
    let (width, height) = match png_ihdr_dimensions(bytes) {
        Some(dims) if format == ImageFormat::Png => dims,
        _ => ImageReader::with_format(Cursor::new(bytes), format).into_dimensions().map_err(decode_err)?,
    };
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(PreprocessError::TooLarge {
            detail: format!("{width}x{height} is {pixels} pixels, over the limit of {}", limits.max_pixels),
        });
    }
    if width == 0 || height == 0 {
        return Err(PreprocessError::Decode { detail: format!("{width}x{height} has no pixels") });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // JPEG decoders fill a truncated scan with grey and report success; a photo cut
        // off in transit must not be classified as if it were whole (Pillow refuses it too).
        return Err(PreprocessError::Decode {
            detail: "jpeg is truncated (no end-of-image marker after the scan)".into(),
        });
    }

    if format == ImageFormat::Jpeg
        && let Some(rgb) = decode_jpeg(bytes, width, height)
    {
        return Ok(rgb);
    }

    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // PNG, WebP, and the JPEGs libjpeg-turbo left. Second line of defence in case a header lies
    // about the size: cap what the decoder may allocate at what the accepted dimensions need
    // (RGBA, 16 bit) plus slack.
    let mut decoder_limits = Limits::default();
    decoder_limits.max_image_width = Some(width);
    decoder_limits.max_image_height = Some(height);
    decoder_limits.max_alloc = Some(pixels * 8 + (64 << 20));
    reader.limits(decoder_limits);
    let image = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => PreprocessError::TooLarge { detail: e.to_string() },
        other => decode_err(other),
    })?;
    Ok(to_rgb(image, background))
}

/// A PNG's size from its IHDR chunk, which the format requires first, right after the
/// signature. Read directly because the decoder's header read goes on to the first IDAT: a file
/// cut off after a giant IHDR would otherwise be a `decode_error`, not `too_large`.
fn png_ihdr_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.len() < 24 || &bytes[12..16] != b"IHDR" {
        return None;
    }
    let be = |at: usize| u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    Some((be(16), be(20)))
}

/// A JPEG is complete when an end-of-image marker (FF D9) follows the last start-of-scan (FF DA).
/// Inside entropy-coded data an FF byte is always followed by 00 or a restart marker, so FF D9
/// cannot appear there by accident.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    let last_eoi = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]);
    matches!((last_sos, last_eoi), (Some(sos), Some(eoi)) if eoi > sos)
}

fn to_rgb(image: DynamicImage, background: [u8; 3]) -> RgbImage {
    if !image.color().has_alpha() {
        return image.into_rgb8();
    }
    let rgba = image.into_rgba8();
    let (w, h) = rgba.dimensions();
    let mut rgb = RgbImage::new(w, h);
    for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
        let a = u32::from(src[3]);
        for c in 0..3 {
            // Pillow's alpha_composite onto an opaque background, rounded to nearest.
            dst[c] = ((u32::from(src[c]) * a + u32::from(background[c]) * (255 - a) + 127) / 255) as u8;
        }
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testsuite::png_header_only;
    use image::{ImageEncoder, Rgb, Rgba, RgbaImage};

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| Rgb([(x * 7) as u8, (y * 5) as u8, 128]));
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(&img, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn decodes_a_jpeg() {
        let rgb = decode_rgb(&jpeg(40, 30), &DecodeLimits::default(), [255; 3]).unwrap();
        assert_eq!(rgb.dimensions(), (40, 30));
    }

    #[test]
    fn a_grey_jpeg_becomes_rgb_and_a_damaged_scan_is_left_to_the_image_crate() {
        let grey = image::GrayImage::from_fn(32, 24, |x, y| image::Luma([(x * 8 + y) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .write_image(&grey, 32, 24, image::ExtendedColorType::L8)
            .unwrap();
        let rgb = decode_jpeg(&bytes, 32, 24).expect("libjpeg-turbo decodes a grey jpeg");
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));

        // Garbage inside the scan, the end-of-image marker kept: libjpeg-turbo warns, so the
        // image crate decides; either way it is an answer, not a panic.
        let mut damaged = jpeg(64, 64);
        let middle = damaged.len() / 2;
        damaged[middle..middle + 40].fill(0xFF);
        assert!(decode_jpeg(&damaged, 64, 64).is_none());
        if let Ok(rgb) = decode_rgb(&damaged, &DecodeLimits::default(), [255; 3]) {
            assert_eq!(rgb.dimensions(), (64, 64));
        }
        // A size other than the header check's is not trusted.
        assert!(decode_jpeg(&jpeg(64, 64), 64, 65).is_none());
    }

    #[test]
    fn truncated_jpeg_is_a_decode_error() {
        let bytes = jpeg(64, 64);
        let err = decode_rgb(&bytes[..bytes.len() / 2], &DecodeLimits::default(), [255; 3]).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::DecodeError, "{err}");
    }

    #[test]
    fn empty_and_text_are_not_images() {
        for bytes in [&b""[..], b"hello, this is a text file named photo.jpg\n"] {
            let err = decode_rgb(bytes, &DecodeLimits::default(), [255; 3]).unwrap_err();
            assert_eq!(err.reason(), autorma_core::DlqReason::NotAnImage, "{err}");
        }
    }

    #[test]
    fn a_huge_png_header_is_refused_without_decoding() {
        let bytes = png_header_only(20_000, 20_000);
        assert!(bytes.len() < 100);
        let err = decode_rgb(&bytes, &DecodeLimits::default(), [255; 3]).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::TooLarge, "{err}");
        assert!(err.detail().contains("20000x20000"), "{err}");
    }

    #[test]
    fn a_huge_png_cut_off_after_its_ihdr_is_still_too_large() {
        let bytes = &png_header_only(20_000, 20_000)[..33]; // signature + IHDR, nothing else
        let err = decode_rgb(bytes, &DecodeLimits::default(), [255; 3]).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::TooLarge, "{err}");
    }

    #[test]
    fn a_header_within_limits_but_no_data_is_a_decode_error() {
        let err = decode_rgb(&png_header_only(100, 100), &DecodeLimits::default(), [255; 3]).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::DecodeError, "{err}");
    }

    #[test]
    fn alpha_is_composited_onto_the_background() {
        let img = RgbaImage::from_fn(2, 1, |x, _| if x == 0 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 0, 0, 128]) });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png).write_image(&img, 2, 1, image::ExtendedColorType::Rgba8).unwrap();
        let rgb = decode_rgb(&png, &DecodeLimits::default(), [255, 255, 255]).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([127, 127, 127]));
    }
}
