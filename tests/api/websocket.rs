use crate::helpers::Backend;
crate::both_backends!();
