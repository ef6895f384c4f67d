//! `[engine] checkpoint_interval`: how often the engine writes a checkpoint
//! of the views' state to the state directory (see `engine/checkpoint.rs`),
//! so that a restart after a crash loads it and applies only the changes
//! logged since.
//!
//! ```toml
//! [engine]
//! checkpoint_interval = "5m"   # default; "off" (or "0"): only at shutdown, and no change log
//! ```

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

pub use crate::engine::checkpoint::periodic::DEFAULT_INTERVAL;

/// The interval from `[engine]`'s raw `checkpoint_interval` (`None`: off),
/// or the span, message and hint of a bad one.
pub(super) fn interval(raw: Option<&Spanned<String>>) -> Result<Option<Duration>, (Range<usize>, String, String)> {
    let Some(raw) = raw else { return Ok(Some(DEFAULT_INTERVAL)) };
    let text = raw.get_ref().trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    match super::parse_duration(text) {
        Some(d) if d.is_zero() => Ok(None),
        Some(d) => Ok(Some(d)),
        None => Err((
            raw.span(),
            format!("[engine] checkpoint_interval: invalid duration {:?}", raw.get_ref()),
            "write a duration such as \"5m\" or \"30s\", or \"off\" for checkpoints at shutdown only".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{parse, ConfigError};
    use super::*;

    const BASE: &str = "views = [\"v.sql\"]\n[source]\nurl = \"sqlite://a.db\"\n";

    fn interval_of(line: &str) -> Result<Option<Duration>, ConfigError> {
        parse(&format!("{BASE}[engine]\n{line}\n"), Path::new("conf/denorm.toml")).map(|c| c.engine.checkpoint_interval)
    }

    /// Five minutes by default; a duration; "off" or 0 turns it off; a bad
    /// one is refused at its line with a hint.
    #[test]
    fn checkpoint_interval_settings() {
        let default = parse(BASE, Path::new("conf/denorm.toml")).unwrap().engine.checkpoint_interval;
        assert_eq!(default, Some(Duration::from_secs(300)));
        assert_eq!(interval_of("checkpoint_interval = \"30s\"").unwrap(), Some(Duration::from_secs(30)));
        assert_eq!(interval_of("checkpoint_interval = \"off\"").unwrap(), None);
        assert_eq!(interval_of("checkpoint_interval = \"0s\"").unwrap(), None);
        match interval_of("checkpoint_interval = \"often\"") {
            Err(ConfigError::Invalid { at, message, hint, .. }) => {
                assert!(at.to_string().starts_with("5:"), "{at}");
                assert!(message.contains("[engine] checkpoint_interval: invalid duration \"often\""), "{message}");
                assert!(hint.is_some_and(|h| h.contains("\"off\"")));
            }
            other => panic!("expected an invalid config, got {other:?}"),
        }
    }
}
