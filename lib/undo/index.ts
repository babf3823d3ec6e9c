// How every host change is made undoable: a LIFO undo stack (the only cleanup mechanism), a
// write-ahead journal that `imgbuild recover` replays after kill -9, the transaction that
// journals a change before it is made and registers its undo the moment it succeeds, and
// openTransaction, the one way to open and close all three.
export * from './journal.js';
export * from './open.js';
export * from './stack.js';
export * from './transaction.js';
