//! Published view state and the HTTP API (skeleton; being written).
