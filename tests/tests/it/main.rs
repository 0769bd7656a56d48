//! rulebox's end-to-end tests: one binary, a module per area.
mod configs;
mod contract;
mod durability;
mod hostile;
mod parity;
mod pipeline;
