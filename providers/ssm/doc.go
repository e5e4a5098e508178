// Package ssm stores hasp leases in AWS Systems Manager Parameter Store
// (store URL "ssm:///PREFIX"), which has no conditional update. It builds
// one out of parameter versions, so that mutual exclusion and fencing hold;
// status and lock_held answers come from eventually consistent reads
// (providers.GuaranteeStaleReads).
//
// # What Parameter Store offers
//
// PutParameter either creates a parameter that does not exist
// (Overwrite=false; ParameterAlreadyExists otherwise) or overwrites it
// unconditionally (Overwrite=true). There is no compare-and-set, and labels
// (LabelParameterVersion) move unconditionally too. What it does keep is a
// version history, as AWS documents it: a new parameter is version 1, every
// change "increments the version number by one", PutParameter returns the
// version it created, the last 100 versions are kept, and "NAME:VERSION"
// reads that version's value, or fails when it cannot be found ("rather
// than falling back to the latest"). Nothing rewrites a version's value.
//
// Designs that delete and re-create a lock parameter race (two acquirers
// delete, one creates, the other deletes the new holder's parameter);
// designs with one parameter per generation need deletion to stay under
// 10,000 parameters, and a deleted generation can be created again by a
// slow writer. This design never deletes and never needs a parameter to
// stay unwritten.
//
// # One parameter per lock; its versions are a log
//
// Lock NAME is the parameter PREFIX/ESCAPED, where ESCAPED keeps
// A-Z a-z 0-9 . - of the name and writes every other byte (and a leading
// ".") as _XX in hex: "jobs/nightly" is PREFIX/jobs_2Fnightly. Every
// version's value is a record (JSON, under 2 KB): the holder (SHA-256 of
// its lease id, owner, metadata, fencing token, expiry, TTL, or none), the
// token base of the chain, a random mark of the write, and prev: the
// version its writer read and computed it from.
//
// A version v is effective when its prev is v−1: its writer read the very
// version before it, and nothing was written in between. The lock's state
// at version v is the record of the latest effective version at or below
// v. Versions never change, so everyone who reads them computes the same
// state.
//
// Every operation reads the latest version r (GetParameter), computes the
// state at r (walking back with GetParameters on "NAME:v" selectors when r
// is not effective), decides, and writes its record with prev = r
// (PutParameter, Overwrite=true). PutParameter returns the version v it
// created. If v = r+1 the write is effective: it was computed from the
// state just before it — a compare-and-set on r that succeeded. If v > r+1
// others wrote in between: the write is not effective and changes nothing;
// the writer reads versions r+1 to v−1, computes the state at v, and
// decides again. Of all the writes computed from the state at r, at most
// one — the one that lands on r+1 — takes effect.
//
//   - Acquire: if no unexpired lease holds the state (by the service's
//     clock), write the new holder with fencing token base + r + 1: the
//     version it lands on when it is effective, so tokens strictly
//     increase with every successful acquire. A held lock is answered from
//     the read, without a write.
//   - Renew: if this lease holds the state unexpired, write it again with
//     the new expiry and the same token.
//   - Release: if so, write a free record (keeping the base).
//   - The first write to a name creates the parameter (Overwrite=false):
//     prev 0, version 1, effective, base providers.TokenBase(now).
//
// When the SDK retries a PutParameter whose first attempt was applied, the
// first attempt landed on r+1 (effective) and the retry later (not
// effective). Acquire then finds its own lease in the state; release reads
// version r+1 and finds its own mark there, and answers released.
//
// # Consistency: what is safe, and what is only eventually right
//
// AWS documents no consistency model for Parameter Store reads, and its
// CloudFormation documentation calls the underlying API eventually
// consistent (a parameter just created may read as not found). A stale read
// can only be wrong about how recent it is: the latest version may be an
// older one, a recent version or parameter may be not found yet. A version
// it does return has the value that version was written with.
//
//   - Acquire, renew and release succeed only by an effective write, whose
//     version number comes from the write itself, not from a read. A
//     decision made on a stale read ends in a write that is not effective
//     and changes nothing. So mutual exclusion and fencing do not depend on
//     fresh reads.
//   - Renew and release answer lease_lost only from a state pinned by a
//     write of the same call: when the read shows the lease gone or
//     expired, they first write the state back unchanged (a "sync" record)
//     and decide on that write's result, so a stale read never gives a
//     false lease_lost. For a name whose parameter reads as not found, the
//     write is a create (Overwrite=false), which tells "does not exist"
//     from "not visible yet": if the parameter exists, the same record is
//     written over it, where it lands on version 2 or later and cannot take
//     effect, and the versions below it give the state.
//   - After a lost race a writer waits a few random milliseconds and reads
//     the latest version again, keeping whichever is later of that read and
//     the version its lost write landed on (others may have lost the same
//     race after it; the read may be stale). Renews of one lease that race
//     each other need not all win: one that loses to another renew of the
//     same lease is done if that renew extended the lease at least as far
//     as this call would have, counted from the call's start.
//   - A version that cannot be read is retried, then answered unavailable;
//     it is never guessed. So is a walk back past the 100 versions kept.
//   - lock_held and Status are answered from the read alone and may be
//     stale: they may still name a holder that has just released. Pinning
//     them would cost a PutParameter per held acquire (and per poll of a
//     waiting one) on the account's scarcest quota. The provider says so in
//     /v1/health (providers.GuaranteeStaleReads).
//
// What the design assumes, and where it would break:
//
//   - PutParameter's version numbers are what AWS documents: each change
//     gets the next number, one write per version, and the writer is told
//     its number — concurrent writers included (Parameter Store answers
//     concurrent updates of one parameter with TooManyUpdates rather than
//     lose one). AWS states no more than this, and nothing here needs
//     more; but it is a documented behaviour, not a stated concurrency
//     guarantee, and this package cannot test real Parameter Store.
//   - Nothing else writes, labels or deletes the parameters under the
//     prefix. A label on the oldest of 100 versions makes every later
//     write fail (ParameterMaxVersionLimitExceeded, answered as an error).
//     Deleting a lock's parameter ends its lease at once, as deleting a
//     DynamoDB item by hand would. Tokens still increase across a deletion:
//     the next chain starts at providers.TokenBase(now), above every token of
//     the deleted one, whose tokens are its own base plus its number of
//     writes (far fewer than one per microsecond), provided the clocks of
//     the service instances agree to within the time between the deletion
//     and the next acquire.
//   - Expiry is judged by the clock of the service instance that writes,
//     measured from before the write, as with DynamoDB: instances whose
//     clocks differ by d can shorten a lease by d from a holder's point of
//     view, which the client SDK's safety margin covers.
//
// # Cost and limits
//
// One standard-tier parameter per lock name ever used (10,000 standard
// parameters per account and Region, no charge; a renew or release of an
// unknown name creates one too, to pin "not found"). An uncontended
// acquire, renew or release is one GetParameter and one PutParameter; a
// held acquire, a status and a health check are one GetParameter each; a
// lost race costs one GetParameters and one GetParameter before the next
// write, and a lease_lost answer one PutParameter to pin it. A page of a
// listing (Provider.List) enumerates every parameter under PREFIX:
// ⌈P/10⌉ GetParametersByPath for P parameters, plus GetParameters to walk
// back the chains whose latest version lost a race (at most
// ListReadBudget a page, then the page ends early). Parameter
// Store throttles each account and Region as a whole (40 transactions per
// second shared by GetParameter, GetParameters and GetParametersByPath at
// the default throughput, more with the paid higher-throughput setting):
// ThrottlingException and TooManyUpdates answer 429 with Retry-After. See
// the README for the numbers and their sources.
//
// Region and credentials come from the standard AWS environment;
// AWS_ENDPOINT_URL_SSM points the SDK at an emulator.
package ssm
