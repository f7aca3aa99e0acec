#[test]
#[ignore]
fn debug() {
    let data = std::fs::read(std::env::var("CASE").unwrap()).unwrap();
    allocator_fuzz::debug_case(&data);
}
