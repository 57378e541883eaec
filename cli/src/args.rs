//! Checks of what a person typed, done before the node is asked, so a typo
//! gets its clear message even when no node runs. The node checks again.

use std::str::FromStr;

use anyhow::Result;
use protocol::{ActionId, PostId, PublicKey, TopicName};

/// A topic name obeys the naming rule.
pub(crate) fn topic(text: &str) -> Result<()> {
    TopicName::parse(text)?;
    Ok(())
}

/// An author or moderator key is well formed (checksum included), or a
/// short form (the printed fingerprint) the node can look up, or a
/// report's id (which names the reported post's author).
pub(crate) fn key(text: &str) -> Result<()> {
    if looks_like_report(text) {
        return report_id(text);
    }
    if PublicKey::from_str(text).is_err() {
        PublicKey::prefix_bytes(text)?;
    }
    Ok(())
}

/// A post id is a full id or a short form long enough to look up, or the
/// id of a report (full or short, as `mod queue` prints it).
pub(crate) fn post_id(text: &str) -> Result<()> {
    if looks_like_report(text) {
        return report_id(text);
    }
    if PostId::from_str(text).is_err() {
        PostId::prefix_bytes(text)?;
    }
    Ok(())
}

/// A report's id, full or a short form long enough to look up.
pub(crate) fn report_id(text: &str) -> Result<()> {
    if ActionId::from_str(text).is_err() {
        ActionId::prefix_bytes(text)?;
    }
    Ok(())
}

fn looks_like_report(text: &str) -> bool {
    text.trim()
        .to_ascii_lowercase()
        .starts_with(&format!("{}1", ActionId::PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_caught_with_the_protocol_message() {
        assert!(topic("Burnout").is_ok());
        assert!(topic("a b")
            .unwrap_err()
            .to_string()
            .starts_with("bad topic name"));
        let id = PostId::of_bytes(b"x").to_string();
        assert!(post_id(&id).is_ok());
        assert!(post_id(&id[..11]).is_ok());
        assert!(post_id("hello")
            .unwrap_err()
            .to_string()
            .contains("not a valid post id"));
        let k = protocol::SecretKey::generate().public().to_string();
        assert!(key(&k).is_ok());
        let mut typo = k.clone();
        typo.pop();
        typo.push(if k.ends_with('q') { 'p' } else { 'q' });
        assert!(key(&typo).unwrap_err().to_string().contains("checksum"));
        let fingerprint = protocol::SecretKey::generate().public().short();
        assert!(key(&fingerprint).is_ok());
        assert!(key(&format!("mu1{fingerprint}")).is_ok());
        assert!(key("qy3x").is_err(), "too short to look up");
        let report = ActionId::of_bytes(b"r").to_string();
        assert!(post_id(&report).is_ok());
        assert!(post_id(&report[..11]).is_ok());
        assert!(post_id("ma1qq").is_err());
        assert!(key(&report[..11]).is_ok(), "a report names its author");
        assert!(report_id(&report[..11]).is_ok());
        assert!(report_id(&id[..11]).is_err(), "a post id is no report id");
    }
}
