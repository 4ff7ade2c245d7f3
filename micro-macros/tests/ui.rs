//! Compile-fail cases for `#[micro::service]`: each file in `tests/ui/` makes
//! one mistake, and its `.stderr` pins the message and the token it points at.

#[test]
fn ui() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
