//! The wasm exports: [`export_rule!`] writes the `rulebox_*` functions of
//! the contract for a [`Rule`](crate::Rule), each a one-liner into the
//! instance's single [`Runner`](crate::Runner), kept in the glue below.

/// Glue for [`export_rule!`](crate::export_rule!); not for direct use.
#[doc(hidden)]
pub mod __export {
    pub use crate::Runner;
    pub use rulebox_abi::{ABI_VERSION, pack};

    /// The single runner of a wasm instance. A wasm instance is single
    /// threaded and the host never re-enters it, so one `static mut` behind
    /// these accessors is sound.
    pub struct Slot<R>(pub core::cell::UnsafeCell<Option<Runner<R>>>);
    // SAFETY: wasm32-wasip1 instances have one thread.
    unsafe impl<R> Sync for Slot<R> {}

    impl<R: crate::Rule> Slot<R> {
        #[allow(clippy::mut_from_ref)]
        pub fn get(&self) -> &mut Runner<R> {
            // SAFETY: see the type's doc: one thread, no re-entry.
            let slot = unsafe { &mut *self.0.get() };
            slot.get_or_insert_with(Runner::new)
        }
    }

    pub fn frame(bytes: &[u8]) -> i64 {
        pack(bytes.as_ptr() as usize as u32, bytes.len() as u32)
    }
}

/// Exports a [`Rule`](crate::Rule) as a rulebox plugin (the `rulebox_*`
/// functions of the contract). Outside WebAssembly it expands to nothing,
/// so the rule crate still builds and tests natively.
///
/// `export_rule!(MyRule, manifest = MANIFEST)` also writes a
/// [`Manifest`](crate::Manifest) (a `const`) into the module's
/// `rulebox.manifest` custom section, as JSON built at compile time (see
/// `rulebox_abi::manifest`): what `rulebox inspect` shows and the schema
/// `rulebox validate` checks the rule's configuration against.
#[macro_export]
macro_rules! export_rule {
    ($rule:ty, manifest = $manifest:expr $(,)?) => {
        $crate::export_rule!($rule);

        #[cfg(target_family = "wasm")]
        const _: () = {
            const __RULEBOX_MANIFEST: $crate::Manifest<'static> = $manifest;
            const __RULEBOX_MANIFEST_LEN: usize = __RULEBOX_MANIFEST.json_len();
            // The section's name is rulebox_abi::manifest::SECTION (an
            // attribute takes only a literal).
            #[used]
            #[unsafe(link_section = "rulebox.manifest")]
            static __RULEBOX_MANIFEST_JSON: [u8; __RULEBOX_MANIFEST_LEN] =
                __RULEBOX_MANIFEST.to_json::<__RULEBOX_MANIFEST_LEN>();
        };
    };
    ($rule:ty) => {
        #[cfg(target_family = "wasm")]
        mod __rulebox_exports {
            use super::*;
            use $crate::__export::{ABI_VERSION, Slot, frame};

            static SLOT: Slot<$rule> = Slot(core::cell::UnsafeCell::new(None));

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_abi_version() -> i32 {
                ABI_VERSION as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_reserve(len: i32) -> i32 {
                SLOT.get().reserve(len as u32 as usize).as_mut_ptr() as usize as i32
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_init(_ptr: i32, len: i32) -> i64 {
                frame(SLOT.get().init_reserved(len as u32 as usize))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_process(_ptr: i32, len: i32, count: i32, now_ms: i64) -> i64 {
                frame(SLOT.get().process_reserved(
                    len as u32 as usize,
                    count as u32 as usize,
                    now_ms,
                ))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_process_objects(
                _ptr: i32,
                batch_len: i32,
                count: i32,
                index_len: i32,
                now_ms: i64,
            ) -> i64 {
                frame(SLOT.get().process_objects_reserved(
                    batch_len as u32 as usize,
                    count as u32 as usize,
                    index_len as u32 as usize,
                    now_ms,
                ))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_tick(now_ms: i64) -> i64 {
                frame(SLOT.get().tick(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_flush(now_ms: i64) -> i64 {
                frame(SLOT.get().flush(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_snapshot(now_ms: i64) -> i64 {
                frame(SLOT.get().snapshot(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_checkpoint(now_ms: i64) -> i64 {
                frame(SLOT.get().checkpoint(now_ms))
            }

            #[unsafe(no_mangle)]
            pub extern "C" fn rulebox_restore(_ptr: i32, len: i32, now_ms: i64) -> i64 {
                frame(SLOT.get().restore_reserved(len as u32 as usize, now_ms))
            }
        }
    };
}
