//! Tools for operators and benchmarks, outside the service: `iamd bench` (every performance
//! budget measured) and the synthetic-log generator (`iamd projections generate`).

pub mod bench;
pub mod generate;
