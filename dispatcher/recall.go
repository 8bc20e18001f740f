package dispatcher

// Recalled: an operator recalled the update before this notification was
// sent; it never will be.
const Recalled Outcome = "recalled"
