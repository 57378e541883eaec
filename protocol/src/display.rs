//! Text from the network made safe to show to a person.
//!
//! Pseudonyms, post bodies, reasons, content warnings and community texts
//! are written by anyone. Shown as they are, invisible characters let them
//! lie: a bidirectional override (U+202E) makes `txt.exe` read as
//! `exe.txt` and can make a pseudonym look like another, a zero-width space
//! makes two different pseudonyms look the same, and a control character
//! (an escape sequence) can rewrite what a terminal shows. [`display_safe`]
//! replaces each such character by a visible escape such as `\u{202E}`, so
//! what a reader sees is what was written. Machine output (JSON) keeps the
//! exact text; this is for text meant for eyes.

use std::borrow::Cow;

/// Whether `c` is shown as an escape by [`display_safe`]: control
/// characters except newline and tab (which are layout, and which
/// single-line output turns into spaces itself), bidirectional controls
/// (embeddings, overrides and isolates U+202A–202E and U+2066–2069, the
/// marks U+200E, U+200F and U+061C), zero-width characters (U+200B–200D,
/// U+2060, U+FEFF), the invisible operators U+2061–2064 and the line and
/// paragraph separators U+2028 and U+2029 (which some terminals break
/// lines on).
pub fn is_unsafe_for_display(c: char) -> bool {
    if c == '\n' || c == '\t' {
        return false;
    }
    c.is_control()
        || matches!(
            c,
            '\u{202A}'..='\u{202E}'
                | '\u{2066}'..='\u{2069}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{061C}'
                | '\u{200B}'..='\u{200D}'
                | '\u{2060}'..='\u{2064}'
                | '\u{FEFF}'
                | '\u{2028}'
                | '\u{2029}'
        )
}

/// `text` with every character that could make it show something else than
/// it says (see [`is_unsafe_for_display`]) replaced by a visible escape
/// `\u{XXXX}` (upper-case hexadecimal, at least two digits). Borrows when
/// nothing needs replacing, which is the common case.
pub fn display_safe(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_unsafe_for_display) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_unsafe_for_display(c) {
            out.push_str(&format!("\\u{{{:02X}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for text in ["hello", "two\nlines\tand a tab", "ünïcødé 日本語 🙂", ""] {
            assert!(matches!(display_safe(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn bidi_overrides_and_isolates_are_escaped() {
        assert_eq!(
            display_safe("river\u{202E}txt.exe"),
            "river\\u{202E}txt.exe"
        );
        for c in ['\u{202A}', '\u{202B}', '\u{202C}', '\u{202D}', '\u{202E}'] {
            assert_eq!(
                display_safe(&c.to_string()),
                format!("\\u{{{:X}}}", c as u32)
            );
        }
        for c in [
            '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{200E}', '\u{200F}',
        ] {
            assert_eq!(
                display_safe(&c.to_string()),
                format!("\\u{{{:X}}}", c as u32)
            );
        }
    }

    #[test]
    fn zero_width_characters_are_escaped() {
        assert_eq!(display_safe("ri\u{200B}ver"), "ri\\u{200B}ver");
        assert_eq!(display_safe("a\u{200C}b\u{200D}c"), "a\\u{200C}b\\u{200D}c");
        assert_eq!(display_safe("\u{2060}x\u{FEFF}"), "\\u{2060}x\\u{FEFF}");
    }

    #[test]
    fn control_characters_are_escaped_but_newline_and_tab_stay() {
        assert_eq!(display_safe("a\x1b[2Jb"), "a\\u{1B}[2Jb");
        assert_eq!(display_safe("over\rwrite"), "over\\u{0D}write");
        assert_eq!(display_safe("nul\0"), "nul\\u{00}");
        assert_eq!(display_safe("del\x7f"), "del\\u{7F}");
        assert_eq!(display_safe("c1\u{9b}31m"), "c1\\u{9B}31m");
        assert_eq!(display_safe("keep\nthis\tlayout"), "keep\nthis\tlayout");
    }

    #[test]
    fn the_escape_cannot_itself_hide_anything() {
        // Every character of the output is visible (no character the
        // function would escape remains).
        let nasty: String = (0u32..0x3000)
            .filter_map(char::from_u32)
            .chain(['\u{FEFF}'])
            .collect();
        let safe = display_safe(&nasty);
        assert!(!safe.chars().any(is_unsafe_for_display));
    }
}
