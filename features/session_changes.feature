Feature: Changing a session: re-INVITE, UPDATE, codecs and INFO
  Mid-call requests through the system under test: re-INVITE (session refresh and codec change), UPDATE
  (RFC 3311), several codecs in SDP and the answerer's choice, INFO (RFC 6086).

  Scenario: A re-INVITE refreshes the session and media keeps flowing
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice sends a re-INVITE
    Then Bob receives a re-INVITE
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: Several codecs offered, the callee picks its favourite, then a re-INVITE changes the codec
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    And Alice's phone offers PCMU, G722 and PCMA
    When Alice calls Bob
    Then Bob receives an INVITE offering PCMU, G722 and PCMA
    When Bob answers the phone
    Then Alice and Bob use PCMA
    When Alice switches the call to PCMU
    Then Alice and Bob use PCMU
    And Alice and Bob talk for 2 seconds
    Then Bob hangs up the phone
    And Alice receives BYE

  Scenario: UPDATE with and without SDP
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice updates the session
    Then Bob receives UPDATE
    When Bob updates the session without SDP
    Then Alice receives UPDATE
    And Alice and Bob talk for 2 seconds
    Then Alice hangs up the phone
    And Bob receives BYE

  Scenario: INFO in a call
    Given Alice uses Squirrel350 phone
    Given Bob uses Chipmunk5000 phone
    When Alice calls Bob
    And Bob answers the phone
    When Alice sends INFO with "volume=3"
    Then Bob receives INFO with "volume=3"
    When Bob sends INFO with "mute"
    Then Alice receives INFO with "mute"
    Then Bob hangs up the phone
    And Alice receives BYE
