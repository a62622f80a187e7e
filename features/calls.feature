Feature: Calls between phones
  Busy, cancelled and unanswerable calls, hold and resume, several calls at once, and what the
  callee's phone sees of the caller's device.

  Scenario: Bob is busy
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob rejects the call as busy
    Then the call fails with 486
    And Alice receives a 486 response

  Scenario: Alice gives up before Bob answers
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob's phone rings
    And Alice hears ringback
    When Alice cancels the call
    Then the call fails with 487
    And Bob receives CANCEL

  Scenario: Calling someone who is not registered
    Given Alice uses Squirrel350 phone
    Given Carol uses Chipmunk5000 phone without registering
    When Alice calls Carol
    Then the call fails with 404

  Scenario: The callee sees who calls
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob receives an INVITE with header From containing Alice
    And Bob answers the phone
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  # A proxy passes the caller's option tags through; the reference PBX is a B2BUA and does not.
  @proxy
  Scenario: Through a proxy the callee sees the caller's device
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob receives an INVITE with header Supported containing 100rel
    And Bob answers the phone
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: Hold and resume
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice puts the call on hold
    Then Bob receives an INVITE with a=sendonly in the body
    When Alice resumes the call
    Then Alice and Bob talk for 2 seconds
    Then Bob hangs up the phone
    And Alice receives BYE

  Scenario: Two calls at once
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    Given Carol uses Squirrel350 phone
    Given Dave uses Chipmunk5000 phone
    When Alice calls Bob
    And Carol calls Dave
    Then Bob answers the phone
    And Dave answers the phone
    And Alice and Bob talk for 2 seconds
    And Carol and Dave talk for 2 seconds
    Then Alice hangs up the phone
    And Dave hangs up the phone
    Then Bob receives BYE
    And Carol receives BYE
