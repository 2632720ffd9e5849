package cloud

import (
	"errors"
	"net/http"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Code is EC2's error code for err ("InvalidAllocationID.NotFound"), or ""
// when err is nil or did not come from EC2's API.
func Code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func codeIn(err error, codes ...string) bool {
	c := Code(err)
	for _, want := range codes {
		if c == want {
			return true
		}
	}
	return false
}

// IsNotFound reports whether EC2 does not know the resource the call
// named. EC2 names the code per resource type (InvalidAllocationID.NotFound,
// InvalidAssociationID.NotFound, InvalidNetworkInterfaceID.NotFound,
// InvalidAddress.NotFound, InvalidInstanceID.NotFound…) and always with
// this suffix, so the suffix is the test.
func IsNotFound(err error) bool {
	return strings.HasSuffix(Code(err), ".NotFound")
}

// IsThrottled reports whether EC2 refused the call for the account's
// request rate: the client's limiter keeps to AWS's buckets, but other
// callers in the account draw from the same ones.
func IsThrottled(err error) bool {
	return codeIn(err, "RequestLimitExceeded", "Throttling", "ThrottlingException")
}

// IsAlreadyAssociated reports whether AssociateAddress with
// AllowReassociation=false found the address associated elsewhere.
func IsAlreadyAssociated(err error) bool {
	return codeIn(err, "Resource.AlreadyAssociated")
}

// IsWrongBorderGroup reports whether AssociateAddress was refused because
// the address and the interface are in different network border groups.
// AWS documents the refusal but not its code; it is taken to be the code
// of other mismatched parameters, with the message naming border groups.
func IsWrongBorderGroup(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "InvalidParameterCombination" &&
		strings.Contains(strings.ToLower(ae.ErrorMessage()), "border group")
}

// IsInUse reports whether the address is in use: ReleaseAddress of an
// associated address, or AllocateAddress of a BYOIP address already held.
func IsInUse(err error) bool {
	return codeIn(err, "InvalidIPAddress.InUse")
}

// IsQuotaExceeded reports whether the account holds as many Elastic IPs as
// its quota allows; only a release or a raised quota changes that.
func IsQuotaExceeded(err error) bool {
	return codeIn(err, "AddressLimitExceeded")
}

// IsUnavailable reports whether EC2 failed on its side: a 5xx code, or any
// 5xx answer that is not throttling (which EC2 also sends as 503).
func IsUnavailable(err error) bool {
	if codeIn(err, "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure") {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() >= http.StatusInternalServerError && !IsThrottled(err)
}

// Class is what the binder does about an error, in a word.
type Class string

const (
	// ClassNone: no error.
	ClassNone Class = "none"
	// ClassThrottled: EC2 refused the call for the request rate; back off.
	ClassThrottled Class = "throttled"
	// ClassNotFound: the resource is gone, or not visible yet.
	ClassNotFound Class = "notfound"
	// ClassConflict: the resource is not in the state the call assumed;
	// look again before deciding.
	ClassConflict Class = "conflict"
	// ClassTransient: EC2 or the path to it failed; the call may or may
	// not have taken effect.
	ClassTransient Class = "transient"
	// ClassQuota: the account is out of Elastic IPs.
	ClassQuota Class = "quota"
	// ClassFatal: the request is wrong or not allowed; it will fail the
	// same way again.
	ClassFatal Class = "fatal"
)

// Classify sorts err into one Class.
//
// Any API error it does not recognise is ClassFatal: EC2 has hundreds of
// client-error codes (UnauthorizedOperation, AuthFailure,
// InvalidParameterValue, InvalidParameterCombination, MissingParameter…)
// and all of them mean the same request fails again. Errors that are not
// from EC2's API are ClassTransient: no answer came back (refused or reset
// connections, timeouts, a truncated body, credentials that could not be
// fetched), so the call may or may not have taken effect and a later,
// checked retry is the way forward. That includes context errors: Classify
// cannot tell the caller's deadline from a per-call one, and a caller whose
// own context ended stops whatever the class.
func Classify(err error) Class {
	switch {
	case err == nil:
		return ClassNone
	case IsThrottled(err):
		return ClassThrottled
	case IsNotFound(err):
		return ClassNotFound
	case IsAlreadyAssociated(err), IsInUse(err), codeIn(err, "IncorrectState", "IncorrectInstanceState"):
		return ClassConflict
	case IsQuotaExceeded(err):
		return ClassQuota
	case IsUnavailable(err):
		return ClassTransient
	case Code(err) != "":
		return ClassFatal
	default:
		return ClassTransient
	}
}

// Retryable reports whether the same call may simply be made again after
// a backoff: throttling and transient failures.
//
// Not NotFound, though EC2 is eventually consistent and a resource just
// created can be NotFound for a moment: mostly NotFound means gone, and
// the caller that just created the resource is the one that knows this
// case and can retry it itself. Not conflicts, which need a fresh look at
// the resource first, nor quota, which waits on a release, nor fatal
// errors. A transient failure of a mutating call may have taken effect,
// so "retryable" still means: check, then retry.
func Retryable(err error) bool {
	switch Classify(err) {
	case ClassThrottled, ClassTransient:
		return true
	default:
		return false
	}
}
