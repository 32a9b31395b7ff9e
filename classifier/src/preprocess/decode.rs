//! Bytes -> upright 8-bit RGB at no more pixels than the model needs, with the size limit
//! checked on the header before anything is decoded.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits, RgbImage};

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

/// The JPEG scale, 1/`a`, a photo is decoded at: the largest `a` of libjpeg's 8, 4 and 2 whose
/// scaled long side, `ceil(long / a)`, is still at least twice `min_long_side` and whose short
/// side keeps a pixel per `a`; else 1. The DCT does the shrinking, nearly free, so a 12 MP phone
/// photo is decoded at 504 x 378 for a 128-pixel model. Twice, not once: the bilinear resize
/// that follows still averages two or more decoded pixels into each input pixel, close to what
/// a full decode gives (at once, 65 catalogue photos of 225 x 300 decoded at half size cost the
/// shipped model 0.5 points of test accuracy; at twice, no catalogue photo is scaled). The
/// training code's twin (`models/autorma_models/preprocess.py`, `draft_scale`) asks Pillow's
/// `draft` for `(w / a, h / a)`, which makes Pillow pick the same `a`.
fn jpeg_draft_scale(width: u32, height: u32, min_long_side: u32) -> u32 {
    let (long, short) = (width.max(height), width.min(height));
    let at_least = min_long_side.saturating_mul(2);
    [8, 4, 2].into_iter().find(|&a| long.div_ceil(a) >= at_least && short >= a).unwrap_or(1)
}

/// A JPEG of the accepted `width` x `height` through libjpeg-turbo at 1/`scale` of its size, as
/// the training code's Pillow decodes it after `draft` (the accurate integer IDCT, scaled in
/// the DCT, fancy upsampling, grey replicated to RGB): the same pixels. `None` for what it will
/// not turn into RGB (CMYK, YCCK), reports as damaged (even only with a warning: Pillow decodes
/// those), or sees at another size than the header check did: the `image` crate, as lenient
/// and under its allocation limits, decodes them or says why not.
fn decode_jpeg(bytes: &[u8], width: u32, height: u32, scale: u32) -> Option<RgbImage> {
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
        decompressor.set_scaling_factor(turbojpeg::ScalingFactor::new(1, scale as usize))?;
        let scaled = header.scaled(decompressor.scaling_factor());
        let pitch = scaled.width * 3;
        let mut image = turbojpeg::Image {
            pixels: vec![0; pitch * scaled.height],
            width: scaled.width,
            pitch,
            height: scaled.height,
            format: turbojpeg::PixelFormat::RGB,
        };
        decompressor.decompress(bytes, image.as_deref_mut())?;
        Ok((image.pixels, scaled.width as u32, scaled.height as u32))
    })();
    match decoded {
        Ok((pixels, w, h)) => RgbImage::from_raw(w, h, pixels),
        Err(e) => {
            tracing::debug!(error = %e, "libjpeg-turbo did not decode the photo; the image crate tries");
            None
        }
    }
}

/// Decodes to upright 8-bit RGB whose letterbox square stays within `limits` (see
/// [`square_within`]): the EXIF orientation is applied (a missing or broken EXIF
/// block counts as upright, never as an error), alpha is composited onto `background`, grey is
/// expanded. A JPEG is decoded at the scale `jpeg_draft_scale` picks for `min_long_side` (the
/// model's input side; `u32::MAX` for every pixel).
pub fn decode_rgb(
    bytes: &[u8],
    limits: &DecodeLimits,
    background: [u8; 3],
    min_long_side: u32,
) -> Result<RgbImage, PreprocessError> {
    let format = sniff_format(bytes)?;
    let decode_err = |e: image::ImageError| PreprocessError::Decode { detail: e.to_string() };
    let (width, height) = dimensions(bytes, format)?;
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
        && let Some(rgb) = decode_jpeg(bytes, width, height, jpeg_draft_scale(width, height, min_long_side))
    {
        return square_within(upright(rgb, jpeg_exif_orientation(bytes)), limits);
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
    let limits_err = |e: image::ImageError| match e {
        image::ImageError::Limits(_) => PreprocessError::TooLarge { detail: e.to_string() },
        other => decode_err(other),
    };
    let mut decoder = reader.into_decoder().map_err(limits_err)?;
    let orientation = if format == ImageFormat::Jpeg {
        jpeg_exif_orientation(bytes)
    } else {
        decoder.orientation().unwrap_or(Orientation::NoTransforms)
    };
    let image = decode_caught(decoder).map_err(limits_err)?;
    square_within(upright(to_rgb(image, background), orientation), limits)
}

/// The `image` crate's decoders are safe Rust, but some panic on malformed data (zune-jpeg
/// 0.5.15 unwraps in its IDCT: found by the `decode` fuzz target, input kept in
/// `fuzz/regressions/decode/`). A panic there is a photo that does not decode, not a worker
/// that dies and dies again on the redelivery.
fn decode_caught(decoder: impl ImageDecoder) -> Result<DynamicImage, image::ImageError> {
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| DynamicImage::from_decoder(decoder)));
    decoded.unwrap_or_else(|panic| {
        Err(image::ImageError::Decoding(image::error::DecodingError::new(
            image::error::ImageFormatHint::Unknown,
            format!("the decoder failed on malformed data ({})", panic_text(&*panic)),
        )))
    })
}

/// What a panic said (its `&str` or `String` payload).
pub(crate) fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

/// A photo's width and height from its header alone, without decoding a pixel.
fn dimensions(bytes: &[u8], format: ImageFormat) -> Result<(u32, u32), PreprocessError> {
    match png_ihdr_dimensions(bytes) {
        Some(dims) if format == ImageFormat::Png => Ok(dims),
        _ => ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| PreprocessError::Decode { detail: e.to_string() }),
    }
}

/// How many pixels [`decode_rgb`] would decode (a JPEG at its DCT scale), from the header: what
/// a request's photos will cost before any is decoded.
pub fn decoded_pixels(bytes: &[u8], min_long_side: u32) -> Result<u64, PreprocessError> {
    let format = sniff_format(bytes)?;
    let (width, height) = dimensions(bytes, format)?;
    let scale = if format == ImageFormat::Jpeg { jpeg_draft_scale(width, height, min_long_side) } else { 1 };
    Ok(u64::from(width.div_ceil(scale)) * u64::from(height.div_ceil(scale)))
}

/// The photo, when the square it is letterboxed into (its long side squared, before the
/// resize, as the training's preprocessing does) stays within the pixel limit too: a long thin
/// photo within the limit would otherwise make a square of gigabytes (found by the `decode`
/// fuzz target: 40 x 64,279 pixels, a 12 GB square).
fn square_within(rgb: RgbImage, limits: &DecodeLimits) -> Result<RgbImage, PreprocessError> {
    let long = u64::from(rgb.width().max(rgb.height()));
    if long * long > limits.max_pixels {
        return Err(PreprocessError::TooLarge {
            detail: format!(
                "{}x{} is letterboxed into a {long}x{long} square, {} pixels, over the limit of {}",
                rgb.width(),
                rgb.height(),
                long * long,
                limits.max_pixels
            ),
        });
    }
    Ok(rgb)
}

fn upright(rgb: RgbImage, orientation: Orientation) -> RgbImage {
    if orientation == Orientation::NoTransforms {
        return rgb;
    }
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    image.into_rgb8()
}

/// The orientation in a JPEG's first EXIF block (an APP1 segment starting `Exif\0\0`, the one
/// Pillow reads), found by walking the segments before the first scan; upright when there is
/// none or it cannot be read.
fn jpeg_exif_orientation(bytes: &[u8]) -> Orientation {
    let mut at = 2; // after SOI
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xDA || marker == 0xD9 {
            break; // start of scan, end of image: no more headers
        }
        let length = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let Some(segment) = bytes.get(at + 4..at + 2 + length).filter(|_| length >= 2) else { break };
        if marker == 0xE1
            && let Some(tiff) = segment.strip_prefix(b"Exif\0\0")
        {
            return Orientation::from_exif_chunk(tiff).unwrap_or(Orientation::NoTransforms);
        }
        at += 2 + length;
    }
    Orientation::NoTransforms
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
    use crate::testsuite::{encode, exif_orientation, png_header_only};

    #[test]
    fn a_long_thin_photo_is_refused_before_its_letterbox_square_is_made() {
        let thin = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(4000, 2, Rgb([9, 9, 9])));
        let limits = DecodeLimits { max_pixels: 1_000_000, max_bytes: 1 << 20 };
        for format in [ImageFormat::Png, ImageFormat::Jpeg] {
            let bytes = encode(&thin, format, None);
            let err = decode_rgb(&bytes, &limits, [255; 3], 224).unwrap_err();
            assert!(
                matches!(&err, PreprocessError::TooLarge { detail } if detail.contains(" square, ") && detail.contains("over the limit")),
                "{format:?}: {err:?}"
            );
        }
        // Within the limit, the same photo decodes.
        let roomy = DecodeLimits { max_pixels: 16_000_000, max_bytes: 1 << 20 };
        assert_eq!(
            decode_rgb(&encode(&thin, ImageFormat::Png, None), &roomy, [255; 3], 224).unwrap().dimensions(),
            (4000, 2)
        );
    }

    /// The `decode` fuzz target's inputs become a tensor or a refusal, without a panic; the
    /// seeds (small JPEG, PNG and WebP photos) become tensors.
    #[test]
    fn the_decode_fuzz_inputs_decode_or_are_refused() {
        let preprocessor = crate::testsuite::fuzz_preprocessor();
        for (name, bytes) in autorma_core::testsuite::fuzz_inputs("decode") {
            let tensor = preprocessor.preprocess(&bytes);
            if name.starts_with("seeds/") {
                assert!(tensor.is_ok(), "{name}: {tensor:?}");
            }
        }
    }
    use image::{ImageEncoder, Rgb, Rgba, RgbaImage};

    #[test]
    fn a_photo_that_panics_the_jpeg_decoder_is_a_decode_error() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/decode/crash-4378ac91af76b8212875501c200151e7824a5f1d"
        ))
        .unwrap();
        let err = decode_rgb(&bytes, &DecodeLimits::default(), [0; 3], 128).unwrap_err();
        assert!(matches!(&err, PreprocessError::Decode { detail } if detail.contains("malformed data")), "{err:?}");
    }

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
        let rgb = decode_rgb(&jpeg(40, 30), &DecodeLimits::default(), [255; 3], u32::MAX).unwrap();
        assert_eq!(rgb.dimensions(), (40, 30));
    }

    #[test]
    fn a_grey_jpeg_becomes_rgb_and_a_damaged_scan_is_left_to_the_image_crate() {
        let grey = image::GrayImage::from_fn(32, 24, |x, y| image::Luma([(x * 8 + y) as u8]));
        let mut bytes = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
            .write_image(&grey, 32, 24, image::ExtendedColorType::L8)
            .unwrap();
        let rgb = decode_jpeg(&bytes, 32, 24, 1).expect("libjpeg-turbo decodes a grey jpeg");
        assert!(rgb.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));

        // Garbage inside the scan, the end-of-image marker kept: libjpeg-turbo warns, so the
        // image crate decides; either way it is an answer, not a panic.
        let mut damaged = jpeg(64, 64);
        let middle = damaged.len() / 2;
        damaged[middle..middle + 40].fill(0xFF);
        assert!(decode_jpeg(&damaged, 64, 64, 1).is_none());
        if let Ok(rgb) = decode_rgb(&damaged, &DecodeLimits::default(), [255; 3], u32::MAX) {
            assert_eq!(rgb.dimensions(), (64, 64));
        }
        // A size other than the header check's is not trusted.
        assert!(decode_jpeg(&jpeg(64, 64), 64, 65, 1).is_none());
    }

    #[test]
    fn truncated_jpeg_is_a_decode_error() {
        let bytes = jpeg(64, 64);
        let err = decode_rgb(&bytes[..bytes.len() / 2], &DecodeLimits::default(), [255; 3], u32::MAX).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::DecodeError, "{err}");
    }

    #[test]
    fn empty_and_text_are_not_images() {
        for bytes in [&b""[..], b"hello, this is a text file named photo.jpg\n"] {
            let err = decode_rgb(bytes, &DecodeLimits::default(), [255; 3], u32::MAX).unwrap_err();
            assert_eq!(err.reason(), autorma_core::DlqReason::NotAnImage, "{err}");
        }
    }

    #[test]
    fn a_huge_png_header_is_refused_without_decoding() {
        let bytes = png_header_only(20_000, 20_000);
        assert!(bytes.len() < 100);
        let err = decode_rgb(&bytes, &DecodeLimits::default(), [255; 3], u32::MAX).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::TooLarge, "{err}");
        assert!(err.detail().contains("20000x20000"), "{err}");
    }

    #[test]
    fn a_huge_png_cut_off_after_its_ihdr_is_still_too_large() {
        let bytes = &png_header_only(20_000, 20_000)[..33]; // signature + IHDR, nothing else
        let err = decode_rgb(bytes, &DecodeLimits::default(), [255; 3], u32::MAX).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::TooLarge, "{err}");
    }

    #[test]
    fn a_header_within_limits_but_no_data_is_a_decode_error() {
        let err = decode_rgb(&png_header_only(100, 100), &DecodeLimits::default(), [255; 3], u32::MAX).unwrap_err();
        assert_eq!(err.reason(), autorma_core::DlqReason::DecodeError, "{err}");
    }

    #[test]
    fn alpha_is_composited_onto_the_background() {
        let img = RgbaImage::from_fn(2, 1, |x, _| if x == 0 { Rgba([0, 0, 0, 0]) } else { Rgba([0, 0, 0, 128]) });
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png).write_image(&img, 2, 1, image::ExtendedColorType::Rgba8).unwrap();
        let rgb = decode_rgb(&png, &DecodeLimits::default(), [255, 255, 255], u32::MAX).unwrap();
        assert_eq!(rgb.get_pixel(0, 0), &Rgb([255, 255, 255]));
        assert_eq!(rgb.get_pixel(1, 0), &Rgb([127, 127, 127]));
    }

    #[test]
    fn a_jpeg_is_decoded_at_the_smallest_dct_scale_that_keeps_the_long_side() {
        assert_eq!(jpeg_draft_scale(3024, 4032, 128), 8); // 378 x 504
        assert_eq!(jpeg_draft_scale(1000, 100, 128), 2); // 1/4 would leave 250 < 2 x 128
        assert_eq!(jpeg_draft_scale(4000, 5, 128), 4); // 1/8 would leave no row per 8
        assert_eq!(jpeg_draft_scale(225, 300, 128), 1); // a catalogue photo: every pixel
        assert_eq!(jpeg_draft_scale(3024, 4032, u32::MAX), 1);
        // libjpeg rounds the scaled size up.
        let rgb = decode_rgb(&jpeg(2001, 333), &DecodeLimits::default(), [255; 3], 128).unwrap();
        assert_eq!(rgb.dimensions(), (501, 84));
    }

    /// Four quadrants of distinct colours, `w` x `h`, stored as they are.
    fn quadrants(w: u32, h: u32) -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| match (x < w / 2, y < h / 2) {
            (true, true) => Rgb([255, 0, 0]),
            (false, true) => Rgb([0, 255, 0]),
            (true, false) => Rgb([0, 0, 255]),
            (false, false) => Rgb([255, 255, 255]),
        }))
    }

    /// Where a stored pixel `(x, y)` of a `w` x `h` photo is shown, by the EXIF specification's
    /// eight orientations (written out here, not taken from the decoder under test).
    fn shown_at(orientation: u16, (x, y): (u32, u32), (w, h): (u32, u32)) -> (u32, u32) {
        match orientation {
            1 => (x, y),
            2 => (w - 1 - x, y),
            3 => (w - 1 - x, h - 1 - y),
            4 => (x, h - 1 - y),
            5 => (y, x),
            6 => (h - 1 - y, x),
            7 => (h - 1 - y, w - 1 - x),
            8 => (y, w - 1 - x),
            _ => unreachable!(),
        }
    }

    #[test]
    fn all_eight_exif_orientations_come_out_upright_in_jpeg_png_and_webp() {
        let (w, h) = (64u32, 32u32);
        let stored = quadrants(w, h);
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::WebP] {
            for orientation in 1..=8u16 {
                let bytes = encode(&stored, format, Some(exif_orientation(orientation)));
                let rgb = decode_rgb(&bytes, &DecodeLimits::default(), [255; 3], u32::MAX).unwrap();
                let turned = orientation >= 5;
                assert_eq!(rgb.dimensions(), if turned { (h, w) } else { (w, h) }, "{format:?} {orientation}");
                // The middle of each stored quadrant, where it is shown.
                for (x, y) in [(w / 4, h / 4), (3 * w / 4, h / 4), (w / 4, 3 * h / 4), (3 * w / 4, 3 * h / 4)] {
                    let (sx, sy) = shown_at(orientation, (x, y), (w, h));
                    let (want, got) = (stored.to_rgb8().get_pixel(x, y).0, rgb.get_pixel(sx, sy).0);
                    let near = want.iter().zip(got).all(|(a, b)| a.abs_diff(b) <= 8);
                    assert!(
                        near,
                        "{format:?} orientation {orientation}: stored ({x},{y}) {want:?} shown at ({sx},{sy}) is {got:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_scaled_jpeg_is_turned_after_decoding() {
        let bytes = encode(&quadrants(2048, 1024), ImageFormat::Jpeg, Some(exif_orientation(6)));
        let rgb = decode_rgb(&bytes, &DecodeLimits::default(), [255; 3], 128).unwrap();
        assert_eq!(rgb.dimensions(), (128, 256)); // 1/8, then a quarter turn
        assert_eq!(rgb.get_pixel(96, 32).0.map(|c| c > 128), [true, false, false]); // red, top right
    }

    #[test]
    fn a_broken_or_unknown_exif_block_leaves_the_photo_as_stored() {
        let stored = quadrants(64, 32);
        let mut garbage = b"MM\x00\x2a\xff\xff\xff\xf0".to_vec();
        garbage.extend([0xAB; 20]);
        for exif in [garbage, exif_orientation(9), exif_orientation(0), b"II".to_vec()] {
            for format in [ImageFormat::Jpeg, ImageFormat::Png] {
                let bytes = encode(&stored, format, Some(exif.clone()));
                let rgb = decode_rgb(&bytes, &DecodeLimits::default(), [255; 3], u32::MAX)
                    .unwrap_or_else(|e| panic!("{format:?} with a broken EXIF block: {e}"));
                assert_eq!(rgb.dimensions(), (64, 32));
                assert_eq!(rgb.get_pixel(8, 8).0.map(|c| c > 128), [true, false, false]);
            }
        }
    }
}
