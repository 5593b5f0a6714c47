//! Embeds the swagger definitions of the TM Forum APIs this crate serves.
//!
//! The official specification files are not part of the repository: they live in
//! `../shared/tmf` beside the repository root (override with `DOME_TMF_DIR`). This script
//! reads each one, keeps only the `definitions` and, inside them, only the keywords the
//! validator uses (type, format, properties, required, items, $ref, enum, minItems,
//! maxItems), and writes the result to `OUT_DIR` for `include_str!`. Descriptions and
//! examples are dropped, which keeps the binary small and the start-up parse fast.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

/// (output file name, path inside the TMF folder)
const SPECS: &[(&str, &str)] = &[(
    "tmf620_v4.1.0.json",
    "specs/TMF620_ProductCatalog/TMF620_Product_Catalog_Management_API_v4.1.0_swagger.json",
)];

/// Schema keywords the validator understands; everything else is documentation.
const KEPT: &[&str] = &[
    "type", "format", "required", "items", "$ref", "enum", "minItems", "maxItems",
];

fn main() {
    if let Err(message) = run() {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    println!("cargo:rerun-if-env-changed=DOME_TMF_DIR");
    println!("cargo:rerun-if-changed=build.rs");
    let tmf_dir = tmf_dir()?;
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    for (out_name, relative) in SPECS {
        let source = tmf_dir.join(relative);
        println!("cargo:rerun-if-changed={}", source.display());
        let text = fs::read_to_string(&source).map_err(|e| {
            format!(
                "cannot read the TM Forum specification {} ({e}). The specs live in \
                 ../shared/tmf beside the repository; set DOME_TMF_DIR to their folder \
                 if they are elsewhere",
                source.display()
            )
        })?;
        let swagger: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", source.display()))?;
        let definitions = swagger
            .get("definitions")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("{} has no definitions", source.display()))?;
        let mut compact = Map::new();
        for (name, schema) in definitions {
            compact.insert(name.clone(), strip(schema));
        }
        let mut out = Map::new();
        out.insert("definitions".into(), Value::Object(compact));
        let bytes = serde_json::to_vec(&Value::Object(out)).map_err(|e| e.to_string())?;
        fs::write(out_dir.join(out_name), bytes).map_err(|e| format!("{out_name}: {e}"))?;
    }
    Ok(())
}

fn tmf_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = env::var("DOME_TMF_DIR") {
        if !dir.is_empty() {
            return Ok(PathBuf::from(dir));
        }
    }
    let manifest =
        env::var("CARGO_MANIFEST_DIR").map_err(|e| format!("CARGO_MANIFEST_DIR: {e}"))?;
    // functions/tmf-core -> repository root -> its parent, where shared/ lives.
    Ok(Path::new(&manifest).join("../../../shared/tmf"))
}

/// Keeps the validation keywords of one schema node, recursing into sub-schemas.
fn strip(schema: &Value) -> Value {
    let Some(object) = schema.as_object() else {
        return schema.clone();
    };
    let mut kept = Map::new();
    for (key, value) in object {
        if key == "properties" {
            if let Some(properties) = value.as_object() {
                let stripped = properties
                    .iter()
                    .map(|(name, sub)| (name.clone(), strip(sub)))
                    .collect();
                kept.insert(key.clone(), Value::Object(stripped));
            }
        } else if key == "items" {
            kept.insert(key.clone(), strip(value));
        } else if KEPT.contains(&key.as_str()) {
            kept.insert(key.clone(), value.clone());
        }
    }
    Value::Object(kept)
}
