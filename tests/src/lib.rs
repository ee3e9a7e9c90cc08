//! The black-box suite lives in `tests/`.
