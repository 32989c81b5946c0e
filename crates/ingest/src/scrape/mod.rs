//! Scraping: Prometheus `scrape_configs`, target discovery, the scrape loop.
//! (Being written.)
