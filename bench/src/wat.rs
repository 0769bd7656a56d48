//! Small hand-written plugins in WAT, for hostile-plugin tests and for the
//! pass-through baseline of the benchmarks. `Wat::default()` passes every
//! event on untouched; its fields replace one export's body at a time.

/// A plugin module in WAT. Memory layout: scratch below 1024; the init
/// frame at 1024; an empty result frame at 2048; a probe frame at 3072; the
/// pass-everything frame at 8192; the input buffer at 1 MiB.
pub struct Wat {
    pub imports: &'static str,
    pub funcs: &'static str,
    /// The init frame's bytes (declared outputs).
    pub init: &'static str,
    pub process: &'static str,
    pub tick: &'static str,
    pub flush: &'static str,
}

pub const NO_OUTPUTS: &str = r#"\00\00\00\00\00\00\00\00"#;
pub const PASS: &str = "(call $pass (local.get $n))";
pub const EMPTY: &str = "(i64.const 0x0000080000000010)";

impl Default for Wat {
    fn default() -> Wat {
        Wat {
            imports: "",
            funcs: "",
            init: NO_OUTPUTS,
            process: PASS,
            tick: EMPTY,
            flush: EMPTY,
        }
    }
}

impl Wat {
    /// The module text (the host compiles WAT as it does wasm).
    pub fn text(&self) -> String {
        format!(
            r#"(module
  {imports}
  (memory (export "memory") 17)
  (data (i32.const 1024) "{init}")
  (func (export "rulebox_abi_version") (result i32) (i32.const 1))
  (func (export "rulebox_reserve") (param $len i32) (result i32)
    (local $need i32)
    (local.set $need (i32.shr_u (i32.add (i32.add (local.get $len) (i32.const 0x100000)) (i32.const 0xffff)) (i32.const 16)))
    (if (i32.gt_u (local.get $need) (memory.size))
      (then (drop (memory.grow (i32.sub (local.get $need) (memory.size))))))
    (i32.const 0x100000))
  (func (export "rulebox_init") (param i32 i32) (result i64) (i64.const 0x0000040000000100))
  ;; A frame passing all $n events on untouched.
  (func $pass (param $n i32) (result i64)
    (memory.fill (i32.const 8208) (i32.const 0) (i32.mul (local.get $n) (i32.const 20)))
    (i32.store (i32.const 8192) (i32.const 0))
    (i32.store (i32.const 8196) (local.get $n))
    (i32.store (i32.const 8200) (i32.const 0))
    (i32.store (i32.const 8204) (i32.const 0))
    (i64.or (i64.const 0x0000200000000000)
      (i64.extend_i32_u (i32.add (i32.const 16) (i32.mul (local.get $n) (i32.const 20))))))
  {funcs}
  (func (export "rulebox_process") (param $p i32) (param $len i32) (param $n i32) (param $now i64) (result i64)
    {process})
  (func (export "rulebox_tick") (param $now i64) (result i64) {tick})
  (func (export "rulebox_flush") (param $now i64) (result i64) {flush})
)"#,
            imports = self.imports,
            init = self.init,
            funcs = self.funcs,
            process = self.process,
            tick = self.tick,
            flush = self.flush,
        )
    }
}
