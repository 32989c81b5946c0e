//! day2 tsdb
