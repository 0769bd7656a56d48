//! The guest SDK for rulebox rules. A rule author implements [`Rule`] and
//! names it in [`export_rule!`]; the SDK owns every pointer, buffer and frame
//! of the contract in [`rulebox_abi`].
//!
//! The same code runs natively: [`Runner`] is the whole guest side without
//! WebAssembly, so a rule is unit-tested and benchmarked as plain Rust, and
//! the wasm exports the macro writes are one-liners into a `Runner`.
//!
//! ```
//! use rulebox_plugin::{EventOut, Rule, json::{Object, ScanError}};
//! struct Tag;
//! impl Rule for Tag {
//!     // The host validates and indexes each event natively, before the
//!     // sandbox: the rule gets the object's members as spans.
//!     const READS_OBJECTS: bool = true;
//!     fn new(_config: &[u8]) -> Result<Self, String> { Ok(Tag) }
//!     fn on_object(&mut self, _event: &[u8], object: Result<Object<'_, '_>, ScanError>,
//!                  _now_ms: i64, out: &mut EventOut<'_>) {
//!         match object {
//!             // Read fields with obj.get("a.b"); splice a field in:
//!             Ok(obj) => out.set_field(&obj, "tag", |b| b.extend_from_slice(b"true")),
//!             Err(e) => out.unreadable(e),
//!         }
//!     }
//! }
//! rulebox_plugin::export_rule!(Tag);
//! ```
//!
//! By concern, after proxy-wasm's SDK: `rule` is the trait a rule author
//! implements, `output` what it answers through, `runner` the guest side
//! of the contract, `hostcalls` the imports (with a native stub) and
//! `export` the macro that writes the wasm exports. [`testing`] (native
//! builds only) is the harness for a rule's own unit tests.

pub use rulebox_abi as abi;
pub use rulebox_abi::json;

mod export;
mod hostcalls;
mod output;
mod rule;
mod runner;
#[cfg(not(target_family = "wasm"))]
pub mod testing;
#[cfg(test)]
mod tests;

#[doc(hidden)]
pub use export::__export;
pub use hostcalls::log;
pub use output::{Emitter, EventOut, FieldKey, OutputId};
pub use rule::Rule;
pub use rulebox_abi::manifest::Manifest;
pub use runner::Runner;
