//! day2 host collector (being written)
