//! Reading and checking the macro input, before any code is generated.

pub(crate) mod ast;
pub(crate) mod attr;
pub(crate) mod check;
mod ctxt;

pub(crate) use ctxt::Ctxt;
