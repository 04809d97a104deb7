//! placeholder
pub mod proto { tonic::include_proto!("fedser.v1"); }
