//! Go text/template subset (being written)
