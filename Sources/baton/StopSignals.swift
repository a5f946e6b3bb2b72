import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Calls a handler for each stop signal (SIGTERM, SIGINT, SIGHUP) as soon as it arrives, on a queue of its own,
/// with no task in between: a graceful handover starts with the signal, so the time it takes to reach the code
/// that stops the command or resigns is part of every handover.
///
/// Signal handling stays as it is otherwise (the signals are ignored by default and delivered to dispatch sources,
/// as ServiceLifecycle's `UnixSignalsSequence` also does, so both can be used in one process). ``cancel()`` stops
/// the handler.
final class StopSignals {
    private let sources: [any DispatchSourceSignal]

    /// The job-control signals `baton run` handles itself: SIGTSTP (Ctrl-Z), SIGTTIN and SIGTTOU stop the
    /// command's group and then `baton`; SIGCONT continues the group (see ``RunSupervisor/jobControl(_:)``). Ignored
    /// by default for the dispatch sources, so a background `baton` writing to a terminal with `tostop` set is not
    /// stopped by the kernel.
    static let jobControl = [SIGTSTP, SIGTTIN, SIGTTOU, SIGCONT]

    /// Starts handling `signals`; `handler` gets the signal number.
    init(_ signals: [Int32] = [SIGTERM, SIGINT, SIGHUP], handler: @escaping @Sendable (Int32) -> Void) {
        let queue = DispatchQueue(label: "baton.stop-signals")
        sources = signals.map { number in
            // A dispatch source sees a signal whose default action is to end the process only when the signal is
            // ignored; it still counts it.
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    /// Stops calling the handler.
    func cancel() {
        for source in sources { source.cancel() }
    }
}
