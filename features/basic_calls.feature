Feature: Basic call flows
  OPTIONS, INVITE/ACK, INVITE/ACK/BYE and CANCEL through the system under test (the seed's interop
  checklist, 000_d37f8b90de5ef18a.txt).

  Scenario: The server answers OPTIONS
    Given Alice uses Squirrel350 phone
    When Alice pings the server
    Then Alice is registered

  Scenario: A phone answers OPTIONS through the server
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice sends OPTIONS to Bob
    Then Bob receives OPTIONS

  Scenario: INVITE, 200 and ACK set the call up
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    Then Bob receives an INVITE with header Content-Type containing application/sdp
    And Alice hears ringback
    When Bob answers the phone
    Then Bob receives ACK
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: INVITE, ACK and BYE from the callee
    Given Alice uses Squirrel350 phone
    Given Bob uses OtterSoft phone
    When Alice calls Bob
    And Bob answers the phone
    Then Alice and Bob talk for 2 seconds
    When Bob hangs up the phone
    Then Alice receives BYE
    And Alice's call ends

  Scenario: CANCEL before the answer
    Given Alice uses Chipmunk5000 phone
    Given Bob uses HeronBase phone
    When Alice calls Bob
    Then Bob's phone rings
    When Alice cancels the call
    Then Bob receives CANCEL
    And the call fails with 487
    And Bob's call ends
