//! Keys by name and text as keystrokes, the way the original does both:
//! X11 keysym names (its table, in [`keysymdef`](super::keysymdef)) or
//! `U+<hex>` in the kb format, and `vnc type` / ClientCutText typed as one
//! press and release a character, with Shift_L around those that need it.

use super::keysymdef::KEYSYMS;
use super::rfb::KeyEvent;
use std::collections::HashMap;
use std::sync::OnceLock;
use thiserror::Error;

/// The keysym names QEMU's en-us keymap types with shift (what the
/// original checks a character's keysym name against).
const SHIFTED: &[&str] = &[
    "exclam",
    "at",
    "numbersign",
    "dollar",
    "percent",
    "asciicircum",
    "ampersand",
    "asterisk",
    "parenleft",
    "parenright",
    "underscore",
    "plus",
    "ISO_Left_Tab",
    "Q",
    "W",
    "E",
    "R",
    "T",
    "Y",
    "U",
    "I",
    "O",
    "P",
    "braceleft",
    "braceright",
    "A",
    "S",
    "D",
    "F",
    "G",
    "H",
    "J",
    "K",
    "L",
    "colon",
    "quotedbl",
    "asciitilde",
    "bar",
    "Z",
    "X",
    "C",
    "V",
    "B",
    "N",
    "M",
    "less",
    "greater",
    "question",
    "Meta_L",
    "brokenbar",
    "Meta_R",
    "XF86AudioPause",
    "XF86Eject",
];

/// The Shift_L keysym, pressed around shifted characters.
pub const SHIFT_L: u32 = 0xffe1;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeysError {
    #[error("unknown key: `{0}`")]
    UnknownKey(String),
    #[error("cannot type non-ASCII character {0:?}")]
    NonAscii(char),
    #[error("character {0:?} has no keysym")]
    NoKeysym(char),
}

struct Tables {
    by_name: HashMap<&'static str, u32>,
    by_value: HashMap<u32, &'static str>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let by_name = KEYSYMS.iter().copied().collect();
        let mut by_value = HashMap::new();
        for &(name, value) in KEYSYMS {
            // The original took a random one of a value's names (Go map
            // order); the first in keysymdef.h is one of those, and stable.
            by_value.entry(value).or_insert(name);
        }
        Tables { by_name, by_value }
    })
}

/// The keysym of an X11 name (`Return`, `a`, `Shift_L`).
pub fn keysym_by_name(name: &str) -> Option<u32> {
    tables().by_name.get(name).copied()
}

/// The name the kb format writes for a keysym, if it has one.
pub fn keysym_name(keysym: u32) -> Option<&'static str> {
    tables().by_value.get(&keysym).copied()
}

/// A key as the kb format writes it: its name, else `U+` and at least four
/// upper-case hex digits (Go's `%U`).
pub fn format_key(keysym: u32) -> String {
    match keysym_name(keysym) {
        Some(name) => name.to_string(),
        None => format!("U+{keysym:04X}"),
    }
}

/// A key as the kb format reads it: a name, else `U+<hex>` (a keysym
/// value, not a Unicode character).
pub fn parse_key(s: &str) -> Result<u32, KeysError> {
    if let Some(v) = keysym_by_name(s) {
        return Ok(v);
    }
    let unknown = || KeysError::UnknownKey(s.to_string());
    let hex = s.strip_prefix("U+").ok_or_else(unknown)?;
    if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown());
    }
    u32::from_str_radix(hex, 16).map_err(|_| unknown())
}

/// Whether the original presses Shift_L around this keysym name.
pub fn needs_shift(name: &str) -> bool {
    SHIFTED.contains(&name)
}

/// The keysym the original types for a character: printable ASCII maps
/// to itself; tab, newline and carriage return to Tab, Linefeed and
/// Return (so a newline is the Linefeed key, which QEMU's en-us keymap
/// sends as the `lf` key, not Enter); anything else is refused.
pub fn char_keysym(c: char) -> Result<(u32, &'static str), KeysError> {
    let v = match c {
        '\t' | '\n' | '\r' => 0xff00 + u32::from(c),
        c if u32::from(c) >= 0x7f => return Err(KeysError::NonAscii(c)),
        c => u32::from(c),
    };
    keysym_name(v)
        .map(|name| (v, name))
        .ok_or(KeysError::NoKeysym(c))
}

/// Text as the key events the original sends for `vnc type` and for a
/// ClientCutText: for each character a press and a release, inside a
/// Shift_L press and release when the character needs shift. All or
/// nothing: one character that cannot be typed refuses the whole text.
pub fn type_text(text: &str) -> Result<Vec<KeyEvent>, KeysError> {
    let mut out = Vec::with_capacity(text.len() * 2);
    for c in text.chars() {
        let (keysym, name) = char_keysym(c)?;
        let shift = needs_shift(name);
        let key = |down, keysym| KeyEvent { down, keysym };
        if shift {
            out.push(key(true, SHIFT_L));
        }
        out.push(key(true, keysym));
        out.push(key(false, keysym));
        if shift {
            out.push(key(false, SHIFT_L));
        }
    }
    Ok(out)
}

/// A ClientCutText's bytes as the original reads them: Go turns the bytes
/// into a string, so invalid UTF-8 becomes U+FFFD and is refused.
pub fn cut_text_string(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_values() {
        assert_eq!(keysym_by_name("Return"), Some(0xff0d));
        assert_eq!(keysym_by_name("a"), Some(0x61));
        assert_eq!(keysym_by_name("Shift_L"), Some(SHIFT_L));
        assert_eq!(keysym_by_name("VoidSymbol"), Some(0xffffff));
        assert_eq!(keysym_by_name("return"), None);
        // Newer keysymdef.h names the original never had.
        assert_eq!(keysym_by_name("permille"), None);
        assert_eq!(KEYSYMS.len(), 2085);
    }

    #[test]
    fn a_value_of_several_names_writes_its_first() {
        assert_eq!(keysym_name(0x27), Some("apostrophe"));
        assert_eq!(keysym_by_name("quoteright"), Some(0x27));
        assert_eq!(keysym_name(0x60), Some("grave"));
        assert_eq!(keysym_name(0xff23), Some("Henkan_Mode"));
        assert_eq!(keysym_name(0xff7e), Some("Mode_switch"));
    }

    #[test]
    fn unnamed_keys_go_as_go_percent_u() {
        assert_eq!(format_key(0x1234567), "U+1234567");
        assert_eq!(format_key(0x7f), "U+007F");
        assert_eq!(format_key(0xff08), "BackSpace");
        assert_eq!(parse_key("U+007F"), Ok(0x7f));
        assert_eq!(parse_key("U+1234567"), Ok(0x1234567));
        assert_eq!(parse_key("BackSpace"), Ok(0xff08));
        for bad in ["U+", "U+xyz", "u+0041", "U+123456789", "Nope", ""] {
            assert_eq!(parse_key(bad), Err(KeysError::UnknownKey(bad.into())));
        }
    }

    #[test]
    fn every_name_round_trips_to_a_name_of_the_same_value() {
        for &(name, value) in KEYSYMS {
            assert_eq!(parse_key(name), Ok(value));
            assert_eq!(parse_key(&format_key(value)), Ok(value));
        }
    }

    fn k(down: bool, keysym: u32) -> KeyEvent {
        KeyEvent { down, keysym }
    }

    #[test]
    fn typing_presses_and_releases_with_shift_where_needed() {
        assert_eq!(
            type_text("aB!").unwrap(),
            vec![
                k(true, 0x61),
                k(false, 0x61),
                k(true, SHIFT_L),
                k(true, 0x42),
                k(false, 0x42),
                k(false, SHIFT_L),
                k(true, SHIFT_L),
                k(true, 0x21),
                k(false, 0x21),
                k(false, SHIFT_L),
            ]
        );
        assert_eq!(type_text("").unwrap(), vec![]);
    }

    #[test]
    fn tab_newline_and_return_have_their_own_keys() {
        let keys: Vec<u32> = type_text("\t\n\r")
            .unwrap()
            .iter()
            .filter(|e| e.down)
            .map(|e| e.keysym)
            .collect();
        assert_eq!(keys, [0xff09, 0xff0a, 0xff0d]);
        assert_eq!(char_keysym('\n').unwrap().1, "Linefeed");
    }

    #[test]
    fn every_printable_ascii_character_types() {
        let shifted = "~!@#$%^&*()_+{}|:\"<>?ABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for c in (0x20u8..0x7f).map(char::from) {
            let events = type_text(&c.to_string()).unwrap();
            let want = if shifted.contains(c) { 4 } else { 2 };
            assert_eq!(events.len(), want, "{c:?}");
        }
    }

    #[test]
    fn untypable_characters_refuse_the_whole_text() {
        assert_eq!(type_text("ok é"), Err(KeysError::NonAscii('é')));
        assert_eq!(type_text("\x7f"), Err(KeysError::NonAscii('\x7f')));
        assert_eq!(type_text("a\x01"), Err(KeysError::NoKeysym('\x01')));
        assert_eq!(
            type_text(&cut_text_string(b"a\xff")),
            Err(KeysError::NonAscii('\u{fffd}'))
        );
    }
}
