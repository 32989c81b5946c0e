//! Getting samples into day2: the Prometheus text and OpenMetrics parser,
//! remote-write decoding, relabelling and the scrape loop. Everything here
//! writes through `day2_model::Appender` and knows nothing of the storage engine.

pub mod relabel;
pub mod remote_write;
pub mod scrape;
pub mod textparse;
