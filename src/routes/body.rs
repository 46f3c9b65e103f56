//! JSON request bodies must be objects. Serde's derived structs also accept arrays,
//! matching items to fields by position (`["hi", null]` as a message), which no client
//! means and which hides mistakes; `Object<T>` refuses them with the usual 400.

use serde::de::{DeserializeOwned, Error};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

pub struct Object<T>(pub T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        T::deserialize(Value::Object(map)).map(Object).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Two {
        a: i32,
        #[allow(dead_code)]
        b: Option<String>,
    }

    #[test]
    fn objects_pass_and_arrays_do_not() {
        let ok: Object<Two> = serde_json::from_str(r#"{"a": 1}"#).unwrap();
        assert_eq!(ok.0.a, 1);
        assert!(serde_json::from_str::<Object<Two>>(r#"[1, null]"#).is_err());
        assert!(serde_json::from_str::<Object<Two>>(r#"{"a": "x"}"#).is_err());
    }
}
