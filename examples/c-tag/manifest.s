# The module's manifest (plugin/abi/src/manifest.rs): the bytes of
# manifest.json as the custom section `rulebox.manifest`. LLVM's assembler
# makes a section named `.custom_section.NAME` the wasm custom section NAME
# (a C `section` attribute would put the bytes in a data segment instead).
	.section .custom_section.rulebox.manifest,"",@
	.incbin "manifest.json"
