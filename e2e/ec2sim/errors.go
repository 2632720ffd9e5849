package ec2sim

import (
	"fmt"
	"net/http"
)

// apiError is an EC2 error answer: the code the SDK surfaces through
// smithy.APIError.ErrorCode, the message, and the HTTP status EC2 sends it
// with (400 for client errors, 5xx for server-side ones).
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func clientError(code, format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: code, message: fmt.Sprintf(format, args...)}
}

func missingParameter(name string) *apiError {
	return clientError("MissingParameter", "The request must contain the parameter %s", name)
}

func invalidValue(format string, args ...any) *apiError {
	return clientError("InvalidParameterValue", format, args...)
}

func invalidCombination(format string, args ...any) *apiError {
	return clientError("InvalidParameterCombination", format, args...)
}

// The answers that do not depend on the request.
var (
	errThrottled = &apiError{status: http.StatusServiceUnavailable, code: "RequestLimitExceeded",
		message: "Request limit exceeded."}
	errInternal = &apiError{status: http.StatusInternalServerError, code: "InternalError",
		message: "An internal error has occurred."}
	errUnavailable = &apiError{status: http.StatusServiceUnavailable, code: "Unavailable",
		message: "The server is overloaded and can't handle the request."}
	errDryRun = &apiError{status: http.StatusPreconditionFailed, code: "DryRunOperation",
		message: "Request would have succeeded, but DryRun flag is set."}
	// errCanceled is counted, never seen: the caller left during added latency.
	errCanceled      = &apiError{status: 499, code: "RequestCanceled", message: "The client closed the request."}
	errMissingAction = clientError("MissingAction", "The request must contain the parameter Action.")
)

// The NotFound and Malformed answers, with EC2's codes and wording.

func allocationNotFound(id string) error {
	return clientError("InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
}

func associationNotFound(id string) error {
	return clientError("InvalidAssociationID.NotFound", "The association ID '%s' does not exist", id)
}

func addressNotFound(ip string) error {
	return clientError("InvalidAddress.NotFound", "Address '%s' not found.", ip)
}

func eniNotFound(id string) error {
	return clientError("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
}

func instanceNotFound(id string) error {
	return clientError("InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", id)
}

func subnetNotFound(id string) error {
	return clientError("InvalidSubnetID.NotFound", "The subnet ID '%s' does not exist", id)
}

func vpcNotFound(id string) error {
	return clientError("InvalidVpcID.NotFound", "The vpc ID '%s' does not exist", id)
}

func attachmentNotFound(id string) error {
	return clientError("InvalidAttachmentID.NotFound", "The attachment ID '%s' does not exist", id)
}

func malformed(code, id, prefix string) error {
	return clientError(code, "Invalid id: \"%s\" (expecting \"%s-...\")", id, prefix)
}
