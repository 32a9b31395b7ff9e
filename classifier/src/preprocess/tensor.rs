//! Letterbox, resize and normalise: steps 2 to 4 of the preprocessing contract.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::imageops;
use image::{Rgb, RgbImage};

/// Pads to an `m x m` square of `background` (`m = max(w, h)`) with the photo at
/// `((m - w) / 2, (m - h) / 2)` (integer division: an odd remainder puts the extra pixel on the
/// right / bottom), then resizes to `size x size` with Pillow's BILINEAR: a triangle filter
/// whose support widens when shrinking (downscaling averages instead of aliasing), computed
/// in Pillow's fixed point by `fast_image_resize` (SIMD), so the pixels are the training's.
pub fn letterbox_resize(rgb: &RgbImage, size: u32, background: [u8; 3]) -> RgbImage {
    let (w, h) = rgb.dimensions();
    let m = w.max(h);
    let square = if w == h {
        None
    } else {
        let mut canvas = RgbImage::from_pixel(m, m, Rgb(background));
        imageops::replace(&mut canvas, rgb, i64::from((m - w) / 2), i64::from((m - h) / 2));
        Some(canvas)
    };
    let square = square.as_ref().unwrap_or(rgb);
    if m == size {
        return square.clone();
    }
    let mut resized = RgbImage::new(size, size);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new().resize(square, &mut resized, &options).expect("an RGB8 image resizes into an RGB8 image");
    resized
}

/// `x = (pixel * scale - mean[c]) / std[c]` in f32, written as CHW into `out`
/// (`out.len() == 3 * w * h`). The same f32 operations in the same order as NumPy's, so the
/// two agree to the last bit for the same pixels.
pub fn normalise_into(square: &RgbImage, scale: f32, mean: [f32; 3], std: [f32; 3], out: &mut [f32]) {
    let plane = (square.width() * square.height()) as usize;
    assert_eq!(out.len(), 3 * plane, "output buffer does not fit the image");
    let (r, rest) = out.split_at_mut(plane);
    let (g, b) = rest.split_at_mut(plane);
    for (i, px) in square.pixels().enumerate() {
        r[i] = (f32::from(px[0]) * scale - mean[0]) / std[0];
        g[i] = (f32::from(px[1]) * scale - mean[1]) / std[1];
        b[i] = (f32::from(px[2]) * scale - mean[2]) / std[2];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letterbox_centres_with_the_extra_pixel_right_and_bottom() {
        // 3 wide, 6 tall of black on white: m = 6, x offset (6 - 3) / 2 = 1, so columns 1..4
        // are black and the extra white column is on the right (4, 5).
        let black = RgbImage::from_pixel(3, 6, Rgb([0, 0, 0]));
        let out = letterbox_resize(&black, 6, [255, 255, 255]);
        let row: Vec<u8> = (0..6).map(|x| out.get_pixel(x, 2)[0]).collect();
        assert_eq!(row, vec![255, 0, 0, 0, 255, 255]);
        // Wide: 6 x 3 -> y offset 1, rows 1..4 black.
        let black = RgbImage::from_pixel(6, 3, Rgb([0, 0, 0]));
        let out = letterbox_resize(&black, 6, [255, 255, 255]);
        let col: Vec<u8> = (0..6).map(|y| out.get_pixel(2, y)[0]).collect();
        assert_eq!(col, vec![255, 0, 0, 0, 255, 255]);
    }

    #[test]
    fn resizes_to_the_input_size() {
        let img = RgbImage::from_pixel(300, 200, Rgb([10, 20, 30]));
        let out = letterbox_resize(&img, 128, [255, 255, 255]);
        assert_eq!(out.dimensions(), (128, 128));
        // The centre is the photo, the top-left corner is background.
        assert_eq!(out.get_pixel(64, 64), &Rgb([10, 20, 30]));
        assert_eq!(out.get_pixel(0, 0), &Rgb([255, 255, 255]));
    }

    #[test]
    fn normalises_to_chw() {
        let img = RgbImage::from_fn(2, 1, |x, _| if x == 0 { Rgb([255, 0, 0]) } else { Rgb([0, 255, 0]) });
        let mut out = vec![0.0; 6];
        normalise_into(&img, 1.0 / 255.0, [0.5; 3], [0.5; 3], &mut out);
        assert_eq!(out, vec![1.0, -1.0, -1.0, 1.0, -1.0, -1.0]);
    }
}
