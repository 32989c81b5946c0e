//! day2 PromQL engine (being written)
