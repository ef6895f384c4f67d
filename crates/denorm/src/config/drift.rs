//! `[engine] drift_sample` and `drift_every`: the continuous drift sampler
//! (see `engine/admin.rs`).
//!
//! ```toml
//! [engine]
//! drift_sample = 16      # keys checked per view each period (0: off; default 16)
//! drift_every = "60s"    # the period (default one minute)
//! ```

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;

/// Keys per view per period when `drift_sample` is not set.
pub const DEFAULT_SAMPLE: u32 = 16;
/// The period when `drift_every` is not set.
pub const DEFAULT_EVERY: Duration = Duration::from_secs(60);

/// The drift sampler's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriftConfig {
    /// Keys of each view compared with the source per period; 0: off.
    pub sample: u32,
    pub every: Duration,
}

impl Default for DriftConfig {
    fn default() -> Self {
        DriftConfig { sample: DEFAULT_SAMPLE, every: DEFAULT_EVERY }
    }
}

/// The settings from `[engine]`'s raw `drift_sample` and `drift_every`, or
/// the span, message and hint of a bad one.
pub(super) fn drift(
    sample: Option<&Spanned<i64>>,
    every: Option<&Spanned<String>>,
) -> Result<DriftConfig, (Range<usize>, String, String)> {
    let mut config = DriftConfig::default();
    if let Some(sample) = sample {
        config.sample = u32::try_from(*sample.get_ref()).map_err(|_| {
            (
                sample.span(),
                format!("[engine] drift_sample = {} is not a number of keys", sample.get_ref()),
                "give the keys checked per view per period, such as 16, or 0 to turn the sampler off".into(),
            )
        })?;
    }
    if let Some(every) = every {
        config.every = super::parse_duration(every.get_ref()).filter(|d| !d.is_zero()).ok_or_else(|| {
            (
                every.span(),
                format!("[engine] drift_every: invalid duration {:?}", every.get_ref()),
                "write a positive duration such as \"60s\" or \"5m\"".into(),
            )
        })?;
    }
    Ok(config)
}
