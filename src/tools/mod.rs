//! Tools for operators and benchmarks, outside the service: `iamd bench` (every performance
//! budget measured), the synthetic-log generator (`iamd projections generate`) and the
//! import of Netsoc's users (`iamd import netsoc`).

pub mod bench;
pub mod generate;
pub mod netsoc_import;
