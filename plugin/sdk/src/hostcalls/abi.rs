//! The raw imports of [`HOST_MODULE`](crate::abi::HOST_MODULE), as the host
//! links them (see [`crate::abi::import`]). wasm32 only: pointers and
//! lengths are the guest's 32-bit ones.

#[link(wasm_import_module = "rulebox")]
unsafe extern "C" {
    /// [`crate::abi::import::LOG`]: `len` bytes of UTF-8 at `ptr`.
    #[link_name = "log"]
    pub fn log(level: i32, ptr: *const u8, len: usize);
}
