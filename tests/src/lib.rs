//! Helpers shared by the programs that the VM suites run against real device nodes.

/// Prints TAP-like result lines and the closing "N passed, N failed" line.
#[derive(Default)]
pub struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    pub fn check(&mut self, name: &str, r: Result<(), String>) {
        match r {
            Ok(()) => {
                self.passed += 1;
                println!("ok - {name}");
            }
            Err(e) => {
                self.failed += 1;
                println!("not ok - {name}: {e}");
            }
        }
    }

    /// Prints the summary and returns the process exit code.
    pub fn finish(self) -> i32 {
        println!("{} passed, {} failed", self.passed, self.failed);
        i32::from(self.failed > 0)
    }
}

/// Turns an expectation into a `Result` with a message.
pub fn expect(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}
