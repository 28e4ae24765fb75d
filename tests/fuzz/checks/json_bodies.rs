//! Request bodies, decoded as their routes decode them (`guildhall::bodies`, which lists every
//! request body of the OpenAPI document). The first input byte picks the body type, the rest
//! is the body.
//!
//! Properties: no panic; a refused body is a problem the server can render, 400 when the
//! bytes are not JSON at all and 422 when they are JSON of the wrong shape (the media
//! callback, read only after its signature is checked, is always 400).

use serde_json::Value;

use guildhall::bodies::{MEDIA_CALLBACK, NAMES, decode};

/// Panics when a property does not hold for `data`.
pub fn check(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(pick) % NAMES.len()];
    let Err(err) = decode(name, body).expect("a listed body name") else {
        return;
    };
    let problem = err.problem();
    let is_json = serde_json::from_slice::<Value>(body).is_ok();
    let expected = if is_json && name != MEDIA_CALLBACK {
        422
    } else {
        400
    };
    let shown = String::from_utf8_lossy(body);
    assert_eq!(problem.status, expected, "{name} {shown:?}: {problem:?}");
    let rendered: Value = serde_json::to_value(&problem).expect("a problem serializes");
    assert_eq!(rendered["status"], expected, "{name}: {rendered}");
    assert!(
        rendered["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{name}: a problem says what is wrong: {rendered}"
    );
}
