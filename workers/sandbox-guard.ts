/**
 * Loaded (--import) into every sandboxed processor's child process. BullMQ's children outlive
 * a parent that dies without closing them (SIGKILL, a crash); such an orphan would keep running
 * a job nobody owns. When the IPC channel to the parent drops, the child exits.
 */
// SIGKILL, not exit(): exit waits for native work in flight (a DuckDB COPY can run for minutes
// more), which would have two processes converting the same job once it is handed on.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
