//! The driver's executor: one smol executor on one module-owned thread,
//! started by the first instance and serving every instance after it.
//!
//! Settings the driver reads from the environment are read here, once, when
//! the thread starts; nothing reads them per connection.

use smol::{Executor, Task};
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

/// The module's executor thread, and the settings every connection it
/// opens shares.
pub(super) struct Driver {
    executor: Arc<Executor<'static>>,
    thread: ThreadId,
    /// tungstenite's `read_buffer_size` for every connection
    /// ([`super::connect::ws_config`]).
    pub read_buffer: usize,
}

/// The read buffer of each connection unless `WSIO_READ_BUFFER` says
/// otherwise: see [`super::connect::ws_config`] for why it is small.
const READ_BUFFER: usize = 4 * 1024;

/// `WSIO_READ_BUFFER` (bytes), a knob for measuring (the throughput bench
/// sets it in the environment of the process that loads the module): read
/// once, when the executor starts.
fn read_buffer_from_env() -> usize {
    std::env::var("WSIO_READ_BUFFER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(READ_BUFFER)
}

/// The driver, started on first use.
pub(super) fn driver() -> &'static Driver {
    static DRIVER: OnceLock<Driver> = OnceLock::new();
    DRIVER.get_or_init(|| {
        let executor = Arc::new(Executor::new());
        let runner = executor.clone();
        let handle = std::thread::Builder::new()
            .name("wsio-driver".into())
            .spawn(move || {
                // A panic in a task is a bug; it must not take every other
                // instance down with the thread. Tasks catch their own (see
                // `spawn`); this loop is the last line.
                loop {
                    let run = runner.run(std::future::pending::<()>());
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        smol::block_on(run)
                    }));
                }
            })
            .expect("the OS can start the driver thread");
        Driver {
            executor,
            thread: handle.thread().id(),
            read_buffer: read_buffer_from_env(),
        }
    })
}

/// Spawns a task on the driver thread.
pub(crate) fn spawn<T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> Task<T> {
    driver().executor.spawn(future)
}

/// Whether the caller is the driver thread (i.e. inside a host callback),
/// where blocking on an instance would deadlock.
pub fn on_driver_thread() -> bool {
    std::thread::current().id() == driver().thread
}
