//! The rule that keeps rsyslog's mmexternal answered line for line: an
//! mmexternal stdin source feeds one chain of single-input transforms into
//! exactly one stdout sink with the same protocol, each transform passing
//! events on (`on_error = "pass_through"`), and nothing else writes to
//! stdout. The transforms on the chain then run one-to-one.

use super::config::PipelineConfig;
use crate::config::{ConfigError, ConfigFile};
use crate::transforms::TransformConfig;
use crate::transforms::wasm::OnError;

/// The transforms on the chain into the mmexternal answer (none when
/// nothing speaks mmexternal), or why the configuration breaks the rule.
pub fn answer_chain(cfg: &PipelineConfig, file: &ConfigFile) -> Result<Vec<String>, ConfigError> {
    let answering: Vec<_> = (cfg.sinks.iter())
        .filter(|(_, s)| s.kind().answers_mmexternal())
        .collect();
    let asking: Vec<_> = (cfg.sources.iter())
        .filter(|(_, s)| s.kind().asks_mmexternal())
        .collect();
    let err = |section: &str, id: &str, msg: String| file.error(section, id, None, msg);
    let (src, sink, sink_cfg) = match (asking.as_slice(), answering.as_slice()) {
        ([], []) => return Ok(Vec::new()),
        ([(src, _)], []) => {
            return Err(err(
                "sources",
                src,
                format!(
                    "sources.{src}: protocol = \"mmexternal\" needs a stdout sink with protocol = \"mmexternal\" to answer rsyslog"
                ),
            ));
        }
        ([], [(sink, _)]) => {
            return Err(err(
                "sinks",
                sink,
                format!(
                    "sinks.{sink}: protocol = \"mmexternal\" answers a stdin source with protocol = \"mmexternal\"; there is none"
                ),
            ));
        }
        ([(src, _)], [(sink, sink_cfg)]) => (src.as_str(), sink.as_str(), *sink_cfg),
        _ => {
            let msg = "at most one mmexternal stdin source and one mmexternal stdout sink";
            return Err(file.error_at(None, msg.into()));
        }
    };
    let other_stdout = (cfg.sinks.iter()).find(|(k, s)| *k != sink && s.kind().writes_stdout());
    if let Some((other, _)) = other_stdout {
        return Err(err(
            "sinks",
            other,
            format!(
                "sinks.{other}: stdout belongs to the mmexternal answers of sinks.{sink}; write this elsewhere"
            ),
        ));
    }
    let [first] = sink_cfg.kind().inputs() else {
        return Err(err(
            "sinks",
            sink,
            format!(
                "sinks.{sink}.inputs: an mmexternal answer has exactly one input (a chain from sources.{src})"
            ),
        ));
    };
    walk_chain(cfg, file, src, sink, first)
}

/// From the answering sink's input back to the source, through
/// transforms' default outputs only.
fn walk_chain(
    cfg: &PipelineConfig,
    file: &ConfigFile,
    src: &str,
    sink: &str,
    first: &str,
) -> Result<Vec<String>, ConfigError> {
    let err = |section: &str, id: &str, msg: String| file.error(section, id, None, msg);
    let mut chain = Vec::new();
    let mut at = first.to_string();
    while at != src {
        let t = match cfg.transforms.get(&at) {
            // A transform met twice is a cycle (reported by the graph checks).
            Some(t) if !at.contains('.') && !chain.contains(&at) => t,
            _ => {
                return Err(err(
                    "sinks",
                    sink,
                    format!(
                        "sinks.{sink}: the chain into an mmexternal answer must run from sources.{src} through transforms' default outputs; {at:?} breaks it"
                    ),
                ));
            }
        };
        let TransformConfig::Wasm(w) = t;
        if w.on_error != OnError::PassThrough {
            return Err(err(
                "transforms",
                &at,
                format!(
                    "transforms.{at}.on_error: must be \"pass_through\" on the way to an mmexternal answer (every line needs one)"
                ),
            ));
        }
        let [next] = t.inputs() else {
            return Err(err(
                "transforms",
                &at,
                format!(
                    "transforms.{at}.inputs: exactly one input on the way to an mmexternal answer"
                ),
            ));
        };
        chain.push(std::mem::replace(&mut at, next.clone()));
    }
    Ok(chain)
}
