//! Topic names. People join topics by name, so one normalisation rule decides
//! when two spellings are the same topic: trim, Unicode NFKC (full-width and
//! other compatibility forms become their plain letters), lower-case; then
//! only letters (any script), digits, `-` and `_`, 1 to 64 characters, and
//! letters of one script (names that mix look-alike scripts are refused, so
//! two topics that look the same are the same topic).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_script::{Script, UnicodeScript};
use unicode_security::{MixedScript, RestrictionLevel, RestrictionLevelDetection};

/// Most characters in a topic name.
pub const MAX_TOPIC_CHARS: usize = 64;

/// Why a topic name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Nothing left after trimming.
    #[error("bad topic name: it is empty")]
    Empty,
    /// Longer than the limit.
    #[error("bad topic name: it has {0} characters, the limit is {MAX_TOPIC_CHARS}")]
    TooLong(usize),
    /// A character outside letters, digits, `-` and `_`.
    #[error("bad topic name: {0:?} is not allowed (use letters, digits, '-' and '_')")]
    BadChar(char),
    /// A name inside a signed item that is not in normal form.
    #[error("bad topic name: {0:?} is not in normal form")]
    NotNormalised(String),
    /// Letters of scripts that can look alike (Latin `o` and Cyrillic `о`):
    /// such a name could pass for another topic.
    #[error(
        "bad topic name: {name:?} mixes {} letters, which can look alike; write it in one script",
        .scripts.join(" and ")
    )]
    MixedScripts {
        /// The name, normalised.
        name: String,
        /// The scripts of its letters, in order of first appearance.
        scripts: Vec<&'static str>,
    },
}

/// A normalised topic name. Only constructible through [`TopicName::parse`],
/// so holding one means the name obeys the rule.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct TopicName(String);

impl TopicName {
    /// Normalises what a person typed into a topic name, or says why not.
    pub fn parse(input: &str) -> Result<Self, TopicError> {
        let normal =
            normalise(input.trim()).ok_or_else(|| TopicError::NotNormalised(input.to_string()))?;
        if normal.is_empty() {
            return Err(TopicError::Empty);
        }
        let count = normal.chars().count();
        if count > MAX_TOPIC_CHARS {
            return Err(TopicError::TooLong(count));
        }
        if let Some(bad) = normal
            .chars()
            .find(|c| !(c.is_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(TopicError::BadChar(bad));
        }
        check_scripts(&normal)?;
        Ok(TopicName(normal))
    }

    /// Accepts only a name that is already in normal form (as inside a
    /// signed item, whose bytes must not be rewritten).
    pub fn parse_exact(input: &str) -> Result<Self, TopicError> {
        let t = TopicName::parse(input)?;
        if t.0 != input {
            return Err(TopicError::NotNormalised(input.to_string()));
        }
        Ok(t)
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// NFKC and lower-case, repeated until nothing changes (lower-casing can
/// leave a string that is not NFKC in a few scripts), so that the result
/// is its own normal form. `None` if that takes more than a few rounds,
/// which no real text does.
fn normalise(text: &str) -> Option<String> {
    let mut current: String = text.nfkc().collect();
    for _ in 0..4 {
        let next: String = current.to_lowercase().nfkc().collect();
        if next == current {
            return Some(current);
        }
        current = next;
    }
    None
}

/// Refuses a name whose letters are of several scripts, except Latin mixed
/// with Chinese, Japanese or Korean (UTS 39 "highly restrictive": those
/// scripts have no letters that pass for Latin ones). Digits, `-` and `_`
/// belong to every script.
fn check_scripts(name: &str) -> Result<(), TopicError> {
    if name.is_single_script()
        || name.detect_restriction_level() == RestrictionLevel::HighlyRestrictive
    {
        return Ok(());
    }
    let mut scripts: Vec<&'static str> = Vec::new();
    for c in name.chars() {
        let script = c.script();
        if matches!(script, Script::Common | Script::Inherited | Script::Unknown) {
            continue;
        }
        if !scripts.contains(&script.full_name()) {
            scripts.push(script.full_name());
        }
    }
    Err(TopicError::MixedScripts {
        name: name.to_string(),
        scripts,
    })
}

impl<'de> Deserialize<'de> for TopicName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TopicName::parse_exact(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TopicName({:?})", self.0)
    }
}

impl FromStr for TopicName {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicName::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalises_spellings_to_one_name() {
        assert_eq!(TopicName::parse("  Burnout ").unwrap().as_str(), "burnout");
        assert_eq!(
            TopicName::parse("Cafe\u{301}").unwrap(),
            TopicName::parse("café").unwrap()
        );
        assert_eq!(TopicName::parse("Ängste_2").unwrap().as_str(), "ängste_2");
        assert_eq!(TopicName::parse("тревога").unwrap().as_str(), "тревога");
    }

    #[test]
    fn bad_names_have_clear_errors() {
        assert_eq!(TopicName::parse("   "), Err(TopicError::Empty));
        assert_eq!(TopicName::parse("a b"), Err(TopicError::BadChar(' ')));
        assert_eq!(TopicName::parse("x/y"), Err(TopicError::BadChar('/')));
        assert_eq!(
            TopicName::parse(&"a".repeat(65)),
            Err(TopicError::TooLong(65))
        );
        assert!(TopicName::parse(&"a".repeat(64)).is_ok());
        assert!(TopicName::parse("a b")
            .unwrap_err()
            .to_string()
            .contains("letters, digits"));
    }

    #[test]
    fn exact_parse_refuses_unnormalised() {
        assert!(TopicName::parse_exact("Burnout").is_err());
        assert!(TopicName::parse_exact("burnout").is_ok());
        assert_eq!(
            TopicName::parse_exact("ｂｕｒｎｏｕｔ"),
            Err(TopicError::NotNormalised("ｂｕｒｎｏｕｔ".into()))
        );
    }

    #[test]
    fn full_width_and_compatibility_forms_are_the_plain_topic() {
        let burnout = TopicName::parse("burnout").unwrap();
        assert_eq!(TopicName::parse("ｂｕｒｎｏｕｔ").unwrap(), burnout);
        assert_eq!(TopicName::parse("ＢＵＲＮＯＵＴ").unwrap(), burnout);
        // A ligature and a superscript digit.
        assert_eq!(TopicName::parse("ﬁre²").unwrap().as_str(), "fire2");
    }

    #[test]
    fn a_name_mixing_look_alike_scripts_is_refused() {
        // The second `о` is Cyrillic: it would pass for "burnout".
        let err = TopicName::parse("burnоut").unwrap_err();
        assert_eq!(
            err,
            TopicError::MixedScripts {
                name: "burnоut".into(),
                scripts: vec!["Latin", "Cyrillic"],
            }
        );
        assert!(err.to_string().contains("mixes Latin and Cyrillic letters"));
        assert!(err.to_string().contains("one script"));
        // The same inside a signed item.
        assert!(matches!(
            TopicName::parse_exact("burnоut"),
            Err(TopicError::MixedScripts { .. })
        ));
        assert!(matches!(
            TopicName::parse("ωmega"),
            Err(TopicError::MixedScripts { .. })
        ));
    }

    #[test]
    fn names_in_one_script_of_any_kind_are_allowed() {
        for name in [
            "тревога",
            "тревога_2",
            "ελπίδα",
            "燃え尽き症候群",
            "バーンアウト",
            "번아웃",
            "δ-9",
        ] {
            assert_eq!(TopicName::parse(name).unwrap().as_str(), name, "{name}");
        }
        // Latin with Japanese or Chinese: no look-alike letters.
        assert!(TopicName::parse("東京tokyo").is_ok());
    }

    proptest! {
        #[test]
        fn parse_is_idempotent_and_valid(s in "\\PC{0,80}") {
            if let Ok(t) = TopicName::parse(&s) {
                let again = TopicName::parse(t.as_str()).unwrap();
                prop_assert_eq!(&again, &t);
                prop_assert!(TopicName::parse_exact(t.as_str()).is_ok());
                let n = t.as_str().chars().count();
                prop_assert!((1..=MAX_TOPIC_CHARS).contains(&n));
                prop_assert!(t.as_str().chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_'));
                prop_assert!(check_scripts(t.as_str()).is_ok());
            }
        }

        #[test]
        fn full_width_spelling_is_the_same_topic(s in "[a-zA-Z0-9_-]{1,60}") {
            // U+FF01..U+FF5E are the full-width forms of '!'..'~'.
            let wide: String = s
                .chars()
                .map(|c| char::from_u32(c as u32 - 0x21 + 0xFF01).unwrap())
                .collect();
            prop_assert_eq!(TopicName::parse(&wide).unwrap(), TopicName::parse(&s).unwrap());
        }

        #[test]
        fn case_and_padding_do_not_change_the_topic(s in "[a-zA-Z0-9_-]{1,60}") {
            let padded = format!("  {}\t", s.to_uppercase());
            prop_assert_eq!(TopicName::parse(&padded).unwrap(), TopicName::parse(&s).unwrap());
        }
    }
}
