//! day2 server
