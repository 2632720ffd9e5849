package fakenode

import (
	"errors"
	"strings"

	"github.com/aws/smithy-go"
)

// errorCode is the EC2 error code of err, "" when it is not an API error.
func errorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

// isNotFound tells whether EC2 says the instance or ENI does not exist.
func isNotFound(err error) bool {
	return strings.HasSuffix(errorCode(err), ".NotFound")
}

// isNotAssigned tells whether an unassign failed because the address is no
// longer on the interface, which is what the unassign wanted anyway.
func isNotAssigned(err error) bool {
	return isNotFound(err) || errorCode(err) == "InvalidParameterValue" && strings.Contains(err.Error(), "not assigned")
}

// isAddressLimit tells whether EC2 refused an ENI more addresses than its
// instance type allows.
func isAddressLimit(err error) bool {
	return errorCode(err) == "PrivateIpAddressLimitExceeded"
}
