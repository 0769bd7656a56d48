//! Wire formats the sources and sinks speak: Splunk HEC envelopes, syslog
//! messages and framing, rsyslog's mmexternal protocol, OpenTelemetry
//! logs (OTLP), gzip bodies, and times as logs write them.
pub mod gzip;
pub mod hec;
pub mod json_text;
pub mod mmexternal;
pub mod otlp;
pub mod syslog;
pub mod timestamp;
