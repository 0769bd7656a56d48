//! What a person at a terminal sees: the progress line while a run reads
//! (`progress`), `rulebox alerts` (`alerts`) and `rulebox top` (`top`), on
//! plain-text tables (`table`; the exit summary's are
//! `topology::summary::table`).
//! None of it is written when stderr (stdout for the commands) is not a
//! terminal, except what a command was asked to print.
pub mod alerts;
pub mod progress;
pub mod table;
pub mod top;
