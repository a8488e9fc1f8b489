//! Admission of objects as the real API server does it: strict decoding into the `k8s-openapi`
//! types, defaulting, and the validation rules of `pkg/apis/core/validation`.

mod admit;
mod container;
mod meta;
pub(crate) mod names;
mod objects;
mod pod;
mod strict;

pub(crate) use admit::{admit_create, admit_update};
pub use strict::FieldValidation;
pub(crate) use strict::dropped_fields;
