//! Correctly spaced text in PNG figures. plotters 0.3.7 rasterises bitmap text through
//! ab_glyph but drops each glyph's left side bearing, so letters crowd together ("clients"
//! reads "dients"). [`TextFixed`] wraps the bitmap backend and draws text itself: the same
//! embedded DejaVu Sans, the same layout box, anchors and rotations as plotters, with every
//! glyph placed at its pen position plus its bearing, kerning included. Everything else is
//! the bitmap backend's own drawing.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind,
};

/// A bitmap backend with correctly spaced text.
pub(crate) struct TextFixed<'a>(pub BitMapBackend<'a>);

type Error<'a> = DrawingErrorKind<<BitMapBackend<'a> as DrawingBackend>::ErrorType>;

fn font() -> FontRef<'static> {
    FontRef::try_from_slice(dejavu::sans::regular()).expect("the embedded DejaVu font is valid")
}

/// Width of `text` in pixels at `size` (pen advance plus kerning), as plotters estimates it.
fn width(font: &FontRef<'_>, size: f64, text: &str) -> f32 {
    let f = font.as_scaled(size as f32);
    let mut x = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            x += f.kern(p, id);
        }
        x += f.h_advance(id);
        prev = Some(id);
    }
    x
}

/// Calls `put(x, y, coverage)` for every inked pixel of `text` drawn from the origin, in the
/// same vertical placement as plotters uses.
fn rasterise(font: &FontRef<'_>, size: f64, text: &str, mut put: impl FnMut(i32, i32, f32)) {
    let f = font.as_scaled(size as f32);
    let mut pen = 0.0f32;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            pen += f.kern(p, id);
        }
        prev = Some(id);
        // Positioned at the pen's fractional offset, so its pixel bounds carry the bearing.
        let glyph = id.with_scale_and_position(f.scale(), ab_glyph::point(pen.fract(), 0.0));
        if let Some(outline) = f.outline_glyph(glyph) {
            let rect = outline.px_bounds();
            let x0 = pen.trunc() as i32 + rect.min.x as i32;
            let y0 = ((size as f32) / 2.0 + rect.min.y) as i32;
            outline.draw(|x, y, a| put(x0 + x as i32, y0 + y as i32, a));
        }
        pen += f.h_advance(id);
    }
}

impl<'a> DrawingBackend for TextFixed<'a> {
    type ErrorType = <BitMapBackend<'a> as DrawingBackend>::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.0.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), Error<'a>> {
        self.0.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), Error<'a>> {
        self.0.present()
    }
    fn draw_pixel(&mut self, point: BackendCoord, color: BackendColor) -> Result<(), Error<'a>> {
        self.0.draw_pixel(point, color)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.0.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.0.draw_rect(upper_left, bottom_right, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.0.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), Error<'a>> {
        self.0.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), Error<'a>> {
        self.0.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        (iw, ih): (u32, u32),
        src: &[u8],
    ) -> Result<(), Error<'a>> {
        self.0.blit_bitmap(pos, (iw, ih), src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), Error<'a>> {
        let w = width(&font(), style.size(), text);
        Ok((w.max(0.0) as u32, (style.size() / 1.24) as u32))
    }

    /// plotters' own text placement (layout box, anchor, rotation), with correct glyphs.
    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), Error<'a>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let font = font();
        let size = style.size();
        let width = width(&font, size, text) as i32;
        let height = (size / 1.24) as i32;
        let dx = match style.anchor().h_pos {
            HPos::Left => 0,
            HPos::Right => -width,
            HPos::Center => -width / 2,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0,
            VPos::Center => -height / 2,
            VPos::Bottom => -height,
        };
        let trans = style.transform();
        let (w, h) = self.get_size();
        let mut result = Ok(());
        rasterise(&font, size, text, |x, y, a| {
            let (x, y) = trans.transform(x + dx, y + dy);
            let (x, y) = (pos.0 + x, pos.1 + y);
            if result.is_ok() && x >= 0 && x < w as i32 && y >= 0 && y < h as i32 {
                let c = BackendColor {
                    alpha: color.alpha * f64::from(a.clamp(0.0, 1.0)),
                    rgb: color.rgb,
                };
                result = self.0.draw_pixel((x, y), c);
            }
        });
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Columns of `text` rendered at 24 px that hold ink.
    fn inked_columns(text: &str, fixed: bool) -> Vec<bool> {
        let (w, h) = (200u32, 60u32);
        let mut buf = vec![255u8; (w * h * 3) as usize];
        {
            crate::plots::register_font();
            let style = ("sans-serif", 24).into_font().color(&BLACK);
            let bitmap = BitMapBackend::with_buffer(&mut buf, (w, h));
            if fixed {
                let mut b = TextFixed(bitmap);
                b.draw_text(text, &style, (10, 20)).unwrap();
                b.present().unwrap();
            } else {
                let mut b = bitmap;
                b.draw_text(text, &style, (10, 20)).unwrap();
                b.present().unwrap();
            }
        }
        (0..w as usize)
            .map(|x| (0..h as usize).any(|y| buf[(y * w as usize + x) * 3] < 128))
            .collect()
    }

    /// Runs of inked columns: separate letters, where letters do not touch.
    fn strokes(cols: &[bool]) -> usize {
        cols.windows(2).filter(|p| !p[0] && p[1]).count() + usize::from(cols[0])
    }

    #[test]
    fn letters_keep_their_spacing_in_bitmap_text() {
        // "c", "l", "i", "e", "n", "t", "s" do not touch in DejaVu Sans at 24 px.
        assert_eq!(strokes(&inked_columns("clients", true)), 7);
        // The width matches the layout plotters reserves for the text (±2 px).
        let cols = inked_columns("clients", true);
        let first = cols.iter().position(|&c| c).unwrap();
        let last = cols.iter().rposition(|&c| c).unwrap();
        let expected = width(&font(), 24.0, "clients");
        assert!(
            ((last - first) as f32 - expected).abs() < 4.0,
            "{first}..{last} vs {expected}"
        );
        // The bitmap backend's own text path crowds the letters together.
        assert!(strokes(&inked_columns("clients", false)) < 7);
    }
}
