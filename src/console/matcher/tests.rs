use super::*;

/// A small deterministic generator, so failures repeat.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u8 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u8
    }
}

fn noise(w: u16, h: u16, seed: u64) -> Screen {
    let mut g = Lcg(seed);
    let rgb = (0..usize::from(w) * usize::from(h) * 3)
        .map(|_| g.next())
        .collect();
    Screen::from_rgb(w, h, rgb).unwrap()
}

fn flat(w: u16, h: u16, level: u8) -> Screen {
    Screen::from_rgb(w, h, vec![level; usize::from(w) * usize::from(h) * 3]).unwrap()
}

fn paste(screen: &mut Screen, part: &Screen, x: u16, y: u16) {
    for j in 0..part.height() {
        for i in 0..part.width() {
            screen.set_pixel(x + i, y + j, part.pixel(i, j));
        }
    }
}

fn encode_png(w: u32, h: u32, color: png::ColorType, depth: png::BitDepth, data: &[u8]) -> Vec<u8> {
    encode_png_with(w, h, color, depth, data, |_| {})
}

fn encode_png_with(
    w: u32,
    h: u32,
    color: png::ColorType,
    depth: png::BitDepth,
    data: &[u8],
    extra: impl FnOnce(&mut png::Encoder<&mut Vec<u8>>),
) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(color);
        enc.set_depth(depth);
        extra(&mut enc);
        let mut wr = enc.write_header().unwrap();
        wr.write_image_data(data).unwrap();
    }
    out
}

/// Every place and its full difference, least first (ties: first place):
/// match.go's search without the pruning.
fn brute_force(screen: &Screen, t: &Template) -> Option<Match> {
    let (sw, sh) = (usize::from(screen.width()), usize::from(screen.height()));
    let gray = gray_of(screen);
    let mut best: Option<Match> = None;
    for y in 0..sh.saturating_sub(t.height) {
        for x in 0..sw.saturating_sub(t.width) {
            let mut sum = 0u64;
            for j in 0..t.height {
                for i in 0..t.width {
                    let s = gray[(y + j) * sw + x + i];
                    sum += u64::from(s.abs_diff(t.gray[j * t.width + i]));
                }
            }
            if best.is_none_or(|b| sum < b.difference) {
                best = Some(Match {
                    x: x as u16,
                    y: y as u16,
                    width: t.width as u16,
                    height: t.height as u16,
                    difference: sum,
                });
            }
        }
    }
    best.filter(|b| b.difference <= MAX_MEAN_DIFFERENCE * (t.width * t.height) as u64)
}

#[test]
fn gray_levels_as_the_original_rounds_them() {
    assert_eq!(gray(0, 0, 0), 0);
    assert_eq!(gray(255, 255, 255), 255);
    assert_eq!(gray(10, 20, 30), 18);
    assert_eq!(gray(5, 0, 0), 2);
    assert_eq!(gray(0, 0, 255), 26);
    assert_eq!(gray(255, 0, 0), 77);
    assert_eq!(gray(0, 255, 0), 153);
}

#[test]
fn finds_an_exact_copy_and_clicks_its_centre() {
    let mut screen = flat(64, 48, 30);
    let part = noise(9, 5, 1);
    paste(&mut screen, &part, 20, 11);
    let t = Template::from_screen(&part).unwrap();
    let m = find(&screen, &t).unwrap();
    assert_eq!((m.x, m.y, m.difference), (20, 11, 0));
    assert_eq!(m.center(), (24, 13));
    assert_eq!(
        m.click(),
        PointerEvent {
            buttons: 1,
            x: 24,
            y: 13
        }
    );
}

#[test]
fn tolerates_a_mean_difference_of_twenty() {
    let t = Template::from_screen(&flat(4, 4, 100)).unwrap();
    let m = find(&flat(10, 10, 120), &t).unwrap();
    assert_eq!(m.mean_difference(), 20.0);
    assert_eq!(find(&flat(10, 10, 121), &t), None);
    // The mean, not the worst pixel: one pixel far off is fine.
    let mut screen = flat(10, 10, 100);
    screen.set_pixel(0, 0, [255, 255, 255]);
    assert!(find(&screen, &t).is_some());
}

#[test]
fn the_last_column_and_row_are_not_searched() {
    let part = noise(5, 4, 2);
    let t = Template::from_screen(&part).unwrap();
    let mut screen = flat(20, 10, 0);
    paste(&mut screen, &part, 15, 2); // touching the right edge
    assert_ne!(find(&screen, &t).map(|m| (m.x, m.y)), Some((15, 2)));
    let mut screen = flat(20, 10, 0);
    paste(&mut screen, &part, 14, 5); // one short of both edges
    assert_eq!(find(&screen, &t).map(|m| (m.x, m.y)), Some((14, 5)));
    let mut screen = flat(20, 10, 0);
    paste(&mut screen, &part, 3, 6); // touching the bottom
    assert_ne!(find(&screen, &t).map(|m| (m.x, m.y)), Some((3, 6)));
    // A template as wide or as tall as the screen has no place.
    assert_eq!(find(&part, &t), None);
}

#[test]
fn the_best_place_wins_and_ties_go_to_the_first() {
    let part = flat(3, 3, 200);
    let t = Template::from_screen(&part).unwrap();
    let mut screen = flat(30, 30, 0);
    paste(&mut screen, &flat(3, 3, 190), 2, 2);
    paste(&mut screen, &part, 20, 20);
    assert_eq!(find(&screen, &t).map(|m| (m.x, m.y)), Some((20, 20)));
    let mut screen = flat(30, 30, 0);
    paste(&mut screen, &part, 20, 5);
    paste(&mut screen, &part, 5, 20);
    assert_eq!(find(&screen, &t).map(|m| (m.x, m.y)), Some((20, 5)));
}

#[test]
fn pruning_finds_what_the_full_search_finds() {
    for seed in 0..40u64 {
        let mut g = Lcg(seed);
        let (w, h) = (20 + u16::from(g.next() % 20), 10 + u16::from(g.next() % 10));
        let (tw, th) = (1 + u16::from(g.next() % 6), 1 + u16::from(g.next() % 6));
        // Smooth screens so near misses and matches both happen.
        let mut screen = flat(w, h, 0);
        for y in 0..h {
            for x in 0..w {
                let v = ((x * 7 + y * 3) % 64) as u8 + g.next() % 24;
                screen.set_pixel(x, y, [v, v, v]);
            }
        }
        let mut part = screen.crop(
            u16::from(g.next()) % (w - tw),
            u16::from(g.next()) % (h - th),
            tw,
            th,
        );
        for x in 0..tw {
            let [r, gg, b] = part.pixel(x, 0);
            part.set_pixel(x, 0, [r.saturating_add(g.next() % 40), gg, b]);
        }
        let t = Template::from_screen(&part).unwrap();
        assert_eq!(find(&screen, &t), brute_force(&screen, &t), "seed {seed}");
    }
}

#[test]
fn png_templates_of_every_kind() {
    use png::{BitDepth, ColorType};
    let rgb = encode_png(
        2,
        1,
        ColorType::Rgb,
        BitDepth::Eight,
        &[10, 20, 30, 255, 0, 0],
    );
    assert_eq!(Template::from_png(&rgb).unwrap().gray, [18, 77]);
    let g = encode_png(2, 1, ColorType::Grayscale, BitDepth::Eight, &[7, 250]);
    assert_eq!(Template::from_png(&g).unwrap().gray, [7, 250]);
    // 16 bits: the high byte counts.
    let g16 = encode_png(1, 1, ColorType::Grayscale, BitDepth::Sixteen, &[0x12, 0xff]);
    assert_eq!(Template::from_png(&g16).unwrap().gray, [0x12]);
    // 1-bit gray expands to 0 and 255.
    let g1 = encode_png(2, 1, ColorType::Grayscale, BitDepth::One, &[0b0100_0000]);
    assert_eq!(Template::from_png(&g1).unwrap().gray, [0, 255]);
    // Alpha darkens, as premultiplied into Go's RGBA.
    let rgba = encode_png(
        1,
        1,
        ColorType::Rgba,
        BitDepth::Eight,
        &[200, 200, 200, 128],
    );
    assert_eq!(premultiply(200, 128), 100);
    assert_eq!(
        Template::from_png(&rgba).unwrap().gray,
        [gray(100, 100, 100)]
    );
    let ga = encode_png(1, 1, ColorType::GrayscaleAlpha, BitDepth::Eight, &[255, 0]);
    assert_eq!(Template::from_png(&ga).unwrap().gray, [0]);
    let pal = encode_png_with(2, 1, ColorType::Indexed, BitDepth::Eight, &[1, 0], |e| {
        e.set_palette(vec![0, 0, 0, 255, 0, 0]);
    });
    assert_eq!(Template::from_png(&pal).unwrap().gray, [77, 0]);
}

#[test]
fn refuses_what_is_not_a_png() {
    assert!(matches!(
        Template::from_png(b"\xff\xd8\xff\xe0 JFIF"),
        Err(MatchError::NotPng)
    ));
    assert!(matches!(Template::from_png(b""), Err(MatchError::NotPng)));
    let mut cut = encode_png(2, 2, png::ColorType::Rgb, png::BitDepth::Eight, &[0; 12]);
    cut.truncate(40);
    assert!(matches!(Template::from_png(&cut), Err(MatchError::Png(_))));
    assert!(matches!(
        Template::from_screen(&Screen::new(0, 3)),
        Err(MatchError::Empty)
    ));
}

#[test]
fn a_screen_saved_as_png_finds_itself() {
    let mut screen = noise(40, 30, 9);
    let part = screen.crop(10, 10, 8, 6);
    let t = Template::from_png(&part.to_png().unwrap()).unwrap();
    assert_eq!(find(&screen, &t).map(|m| (m.x, m.y)), Some((10, 10)));
    paste(&mut screen, &flat(8, 6, 0), 10, 10);
    assert_eq!(find(&screen, &t), None);
}
