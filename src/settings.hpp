// Every sicoop.* setting (GUC): defined here, at library load (_PG_init, src/entry.cpp), and
// read from C++ only through these accessors. (SQL reads some of them with current_setting().)
#pragma once

namespace sicoop::settings {

// What run_pipeline(full => true) does (sicoop.full_run).
enum class FullRun { Compare, Rebuild };

// Defines every setting and reserves the "sicoop" prefix. Called once, by _PG_init.
void define();

const char* timezone();          // sicoop.timezone
const char* export_directory();  // sicoop.export_directory ("" or nullptr: none)

int source_timeout_ms();         // sicoop.source_timeout (0: no limit)
int lock_timeout_ms();           // sicoop.lock_timeout (0: no limit)
int step_timeout_ms();           // sicoop.step_timeout (0: no limit)
int max_run_time_s();            // sicoop.max_run_time (0: never)
FullRun full_run();              // sicoop.full_run
int full_check_wait_ms();        // sicoop.full_check_wait
int stream_interval_ms();        // sicoop.stream_interval
int stream_batch_changes();      // sicoop.stream_batch_changes
int stream_work_mem_kb();        // sicoop.stream_work_mem
int stream_receive_timeout_ms(); // sicoop.stream_receive_timeout (0: never)

// The lock wait bound of a run and of the stream worker: sicoop.lock_timeout, or the session's
// own lock_timeout if shorter (0: none).
int run_lock_timeout_ms();

}  // namespace sicoop::settings
