Feature: Reliable provisionals and session timers
  PRACK (RFC 3262) and session timers (RFC 4028) are end to end: a proxy (Kamailio) passes Require,
  Supported, RSeq, RAck and Session-Expires through; the reference PBX, a B2BUA, does 100rel on each leg and
  carries the session timer negotiation and its refreshes across its legs.

  Scenario: A reliable 180 is PRACKed
    Given Alice uses Squirrel350 phone
    Given Bob uses Squirrel350 phone
    When Alice calls Bob
    Then Bob receives an INVITE with header Supported containing 100rel
    When Bob answers with a reliable 180
    Then Alice receives a PRACK-able 180 with RSeq
    And Bob receives PRACK
    And Alice's PRACK is answered
    When Bob answers the phone
    Then Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: The caller refreshes the session
    Given Alice uses Squirrel350 phone
    Given Bob uses Squirrel350 phone
    And the call uses a session timer of 7 seconds
    When Alice calls Bob
    Then Bob receives an INVITE with header Session-Expires containing 7
    And Bob answers the phone
    Then the session is refreshed by Alice within 5 seconds
    And Bob receives UPDATE
    When Bob refreshes the session
    Then Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE
